"""A few plain commands in one round trip, on a connection of the client's own pool.

An enqueue is two short commands (SADD and LPUSH). Sent through a redis-py pipeline they
cost about a third more than the round trip itself: the pipeline object, its reset, its
per-command parsing options and bookkeeping. ``run`` packs the commands, sends them and reads
the raw replies on a pooled connection, keeping what matters from the pipeline: the
connection's health check, its retry policy after a connection error, and a connection
whose replies were not all read is closed rather than handed to the next caller.

Only for a plain ``redis.Redis`` (a single server or Sentinel's primary); a cluster client
routes by slot and keeps its pipeline.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import redis

Command = Sequence[Any]

#: redis-py before 5.3 wants the command's name when a connection is taken from the pool.
_NAMED = inspect.signature(redis.ConnectionPool.get_connection).parameters[
    "command_name"].default is inspect.Parameter.empty


def usable(target: object) -> bool:
    """True for a client whose commands all go to one server through its pool."""
    return type(target) is redis.Redis and target.connection is None


def run(target: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write and return their replies, in order. An error reply
    raises (as a pipeline's ``execute`` does), after every reply has been read."""
    pool = target.connection_pool
    conn = pool.get_connection("PIPELINE") if _NAMED else pool.get_connection()
    try:
        replies: list[Any] = conn.retry.call_with_retry(
            lambda: _exchange(conn, commands), lambda _error: _drop(conn))
        return replies
    finally:
        pool.release(conn)


def _exchange(conn: Any, commands: Sequence[Command]) -> list[Any]:
    conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    failure: redis.ResponseError | None = None
    try:
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as exc:  # the other replies are still to be read
                failure = failure or exc
                replies.append(exc)
    except BaseException:
        _drop(conn)  # replies left unread would answer the next caller's commands
        raise
    if failure is not None:
        raise failure
    return replies


def _drop(conn: Any) -> None:
    conn.disconnect()
