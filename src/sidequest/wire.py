"""A few plain commands in one round trip, on a connection of the client's own pool.

An enqueue is two short commands (SADD and LPUSH). Sent through a redis-py pipeline they
cost about a third more than the round trip itself: the pipeline object, its reset, its
per-command parsing options and bookkeeping. ``run`` packs the commands, sends them and reads
the raw replies on a pooled connection, keeping what matters from the pipeline: the
connection's health check, and a connection whose replies were not all read is closed rather
than handed to the next caller. Unlike redis-py's own retry, nothing is sent twice: a push
whose reply was lost may have been written.

Only for a plain ``redis.Redis`` (a single server or Sentinel's primary); a cluster client
routes by slot and keeps its pipeline.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import redis

Command = Sequence[Any]

_pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack

    _pack_command = _hiredis_pack
except ImportError:  # installed without hiredis: redis-py's own packing
    _pack_command = None

#: redis-py before 5.3 wants the command's name when a connection is taken from the pool.
_NAMED = inspect.signature(redis.ConnectionPool.get_connection).parameters[
    "command_name"].default is inspect.Parameter.empty


def usable(target: object) -> bool:
    """True for a client whose commands all go to one server through its pool."""
    return type(target) is redis.Redis and target.connection is None


class NotSent(redis.ConnectionError):
    """No connection could be made ready (refused, or its handshake or health check failed):
    nothing was sent."""


class ReplyLost(redis.ConnectionError):
    """The commands were sent but their replies never came (a timeout, a dropped
    connection): they may have run. Not retried, so that a push is never written twice."""


class PartlyWritten(ReplyLost):
    """Redis ran some of the commands and refused others (out of memory part way through,
    a slot that kept moving): part of the write is in Redis."""


#: A timeout's words when no connection was made, so nothing was sent: redis-py's while it
#: connects, and the ssl module's in a TLS handshake (a rediss:// URL at a plain server).
#: Whole phrases: a reply's timeout names the host, which could hold a shorter word.
_NOT_CONNECTED = ("Timeout connecting", "handshake operation timed out")


def maybe_sent(exc: BaseException) -> bool:
    """Whether the commands behind ``exc`` may have reached Redis: a reply lost, or one that
    did not come in time (a hung server, a partition), here or behind the error that wraps
    it; not a connection that was never made."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NotSent):
            return False
        if isinstance(seen, ReplyLost) or (
                isinstance(seen, (redis.TimeoutError, TimeoutError))
                and not any(word in str(seen) for word in _NOT_CONNECTED)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def run(target: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write and return their replies, in order. An error reply
    raises (as a pipeline's ``execute`` does), after every reply has been read."""
    return checked(answers(target, commands))


def checked(replies: list[Any]) -> list[Any]:
    """``replies``, unless one is an error reply: then the first of those is raised."""
    failure = next((r for r in replies if isinstance(r, redis.ResponseError)), None)
    if failure is not None:
        raise failure
    return replies


def answers(target: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """As ``run``, but an error reply takes its command's place instead of raising: a caller
    that resends the commands Redis refused (a redirect, a script not loaded) sees which.

    Nothing is resent here: the pool hands out a connection it checked (one the server
    closed is replaced first), a failure to connect raises before anything is sent, and a
    failure after that raises ReplyLost, since the commands may have run."""
    pool = target.connection_pool
    conn: Any = _ready(pool.get_connection, "PIPELINE" if _NAMED else None)
    try:
        for attempt in (1, 2):
            # A no-op when connected; a failure here means nothing was sent, as in the check
            # of a connection that was idle.
            _ready(conn.connect)
            _ready(conn.check_health)
            try:
                return _exchange(conn, commands)
            except (ReplyLost, NotSent):
                raise
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                _drop(conn)
                if not _refused_by_replica(exc):
                    raise ReplyLost(str(exc)) from exc
                if attempt == 2:
                    raise  # refused twice, so not written: a plain ConnectionError
                # Refused, so not written: once more, on the primary Sentinel names now.
        raise AssertionError("unreachable")
    finally:
        pool.release(conn)


def _ready(step: Callable[..., Any], *args: Any) -> Any:
    """A step before anything is sent; its failure is a NotSent."""
    try:
        return step(*args) if args and args[0] is not None else step()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if isinstance(exc, (NotSent, redis.AuthenticationError)):
            raise  # a refused password is the URL's fault, and its caller says so
        raise NotSent(str(exc)) from exc


def _refused_by_replica(exc: BaseException) -> bool:
    """A Sentinel-managed connection turns a replica's READONLY refusal (its primary was
    failed over) into a ConnectionError: the commands were refused, none was run."""
    return isinstance(exc.__context__, redis.ReadOnlyError)


def _exchange(conn: Any, commands: Sequence[Command]) -> list[Any]:
    replies: list[Any] = []
    try:
        conn.send_packed_command(_pack(conn, commands), check_health=False)
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as exc:  # the other replies are still to be read
                replies.append(exc)
    except BaseException as exc:
        _drop(conn)  # replies left unread would answer the next caller's commands
        if not replies and isinstance(exc, redis.BusyLoadingError):
            # Refused as Redis reads its data set back (a restart): it runs no command
            # until it is done, so nothing of the write ran. redis-py raises this reply as
            # a ConnectionError, which would read as "may have been enqueued".
            raise NotSent(f"Redis is loading its data set into memory: {exc}") from exc
        if replies and _refused_by_replica(exc) and not _before_exec(commands, replies):
            # Demoted between two commands: those before ran on the old primary, and may
            # live on in the promoted replica. Only a refusal of the first is a clean one,
            # or one inside a transaction, which the dropped connection discarded.
            raise ReplyLost(f"the server became a replica part way through the write: {exc}"
                            ) from exc
        raise
    return replies


def _before_exec(commands: Sequence[Command], replies: list[Any]) -> bool:
    """Whether the reply that failed came before a transaction's EXEC (a MULTI/EXEC write,
    sending.py): nothing of it ran, as the dropped connection discards what was queued."""
    ends = [i for i, command in enumerate(commands) if tuple(command[:1]) == ("EXEC",)]
    return bool(ends) and len(replies) < ends[-1]


def _pack(conn: Any, commands: Sequence[Command]) -> Any:
    """The commands as Redis reads them. hiredis packs str, bytes, int and float as redis-py's
    encoder does with its default (UTF-8, strict), in a fifth of the time; any other
    connection, or one without hiredis, packs through redis-py."""
    encoder = getattr(conn, "encoder", None)  # a client-side caching proxy has none
    if (_pack_command is None or encoder is None or encoder.encoding != "utf-8"
            or encoder.encoding_errors != "strict"):
        return conn.pack_commands(commands)
    return [b"".join([_pack_command(tuple(command)) for command in commands])]


def _drop(conn: Any) -> None:
    conn.disconnect()
