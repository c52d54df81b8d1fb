"""A push's commands sent so that none is ever sent twice, on a single Redis or a Cluster.

redis-py's pipelines resend their commands after a timeout or a dropped connection, a
cluster pipeline whatever its retry setting; a push whose reply was only late would then be
written twice. Here the commands go out once, through ``wire``, and only those Redis refused
without running them are sent again:

- NOSCRIPT: the script is loaded, then its call resent (a restarted or promoted server has
  an empty script cache);
- on a Cluster, MOVED (the slot has a new owner: the slot map is re-read), ASK (the slot is
  migrating and the key is already on the target: resent there after ASKING) and TRYAGAIN
  (a script's keys are split by a migration for a moment).

A push's keys all carry one hash tag, so on a Cluster every command goes to one primary: its
own plain connection, which ``wire`` can use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster

from sidequest import wire
from sidequest.wire import Command

#: Rounds of resending what was refused: redirects settle in one or two; a migration's
#: TRYAGAIN lasts while the keys of one script are being moved, a few milliseconds each.
ROUNDS = 20
TRY_AGAIN_PAUSE = 0.02


def send(target: redis.Redis, commands: Sequence[Command],
         scripts: dict[str, Any] | None = None) -> list[Any]:
    """Send ``commands`` and return their replies; an error reply raises, after the others
    were read. ``scripts`` maps the SHA of each script called by EVALSHA to its source."""
    if not commands:
        return []
    if wire.usable(target):  # the common push: one exchange, and every reply a success
        replies = wire.answers(target, commands)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                return _settled(lambda batch: wire.answers(target, batch), commands,
                                scripts or {}, first=replies)
        return replies
    if isinstance(target, RedisCluster) and _one_slot(target, commands):
        return _to_cluster(target, commands, scripts or {})
    return _pipelined(target, commands, scripts or {})


def _settled(exchange: Any, commands: Sequence[Command], scripts: dict[str, Any],
             cluster: RedisCluster | None = None, first: list[Any] | None = None) -> list[Any]:
    """Send through ``exchange`` (commands -> replies) unless ``first`` holds the replies
    already, then resend the refused ones."""
    replies: list[Any] = exchange(commands) if first is None else first
    for _ in range(ROUNDS):
        refused = [i for i, reply in enumerate(replies) if _not_run(reply, cluster)]
        if not refused:
            return _raised(replies)
        try:
            again = _prepare_resend(exchange, [replies[i] for i in refused],
                                    [commands[i] for i in refused], scripts, cluster)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if len(refused) == len(replies):
                raise
            raise wire.ReplyLost(f"part of the write ran, then: {exc}") from exc
        for index, reply in zip(refused, again, strict=True):
            replies[index] = reply
    ran = [reply for reply in replies if not _not_run(reply, cluster)]
    if ran and len(ran) < len(replies):
        # Part of the push ran: it may have been enqueued, so it must not be called lost.
        refusal = next(r for r in replies if _not_run(r, cluster))
        raise wire.ReplyLost(f"Redis kept refusing part of the write: {refusal}")
    return _raised(replies)


def _prepare_resend(exchange: Any, refusals: list[Any], commands: list[Command],
                    scripts: dict[str, Any], cluster: RedisCluster | None) -> list[Any]:
    """Deal with why each command was refused, then send them again."""
    if any(isinstance(r, redis.exceptions.NoScriptError) for r in refusals):
        loads = [("SCRIPT", "LOAD", scripts[str(c[1])]) for c in commands if str(c[1]) in scripts]
        _raised(exchange(loads))
    if any(isinstance(r, redis.exceptions.TryAgainError) for r in refusals):
        time.sleep(TRY_AGAIN_PAUSE)
    if cluster is None or not any(isinstance(r, redis.exceptions.AskError) for r in refusals):
        return list(exchange(commands))
    return _asked(exchange, cluster, refusals, commands)


def _asked(exchange: Any, cluster: RedisCluster, refusals: list[Any],
           commands: list[Command]) -> list[Any]:
    """Send ASK-redirected commands to the node named, each after ASKING; the others (only
    NOSCRIPT or TRYAGAIN here) where they were sent."""
    replies: list[Any] = [None] * len(commands)
    local = [i for i, r in enumerate(refusals) if type(r) is not redis.exceptions.AskError]
    if local:
        for index, reply in zip(local, exchange([commands[i] for i in local]), strict=True):
            replies[index] = reply
    for index, refusal in enumerate(refusals):
        if type(refusal) is redis.exceptions.AskError:
            node = cluster.get_node(refusal.host, refusal.port)  # type: ignore[no-untyped-call]
            if node is None:  # a node the map does not know yet: next round, after a re-read
                _refresh(cluster)
                replies[index] = refusal
                continue
            target = cluster.get_redis_connection(node)
            replies[index] = wire.answers(target, [("ASKING",), commands[index]])[1]
    return replies


def _to_cluster(cluster: RedisCluster, commands: Sequence[Command],
                scripts: dict[str, Any]) -> list[Any]:
    key = _first_key(commands[0])

    def exchange(batch: Sequence[Command]) -> list[Any]:
        node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
        try:
            replies = wire.answers(cluster.get_redis_connection(node), batch)
        except wire.ReplyLost:
            raise  # a late reply: the node may be fine; if it died, the next connect fails
        except (redis.ConnectionError, redis.TimeoutError):
            _refresh(cluster)  # the next attempt (a later push, a loop's retry) is rerouted
            raise
        if any(isinstance(r, redis.exceptions.MovedError) and type(r) is not
               redis.exceptions.AskError for r in replies):
            _refresh(cluster)
        return replies

    return _settled(exchange, commands, scripts, cluster)


def _pipelined(target: redis.Redis, commands: Sequence[Command],
               scripts: dict[str, Any]) -> list[Any]:
    """A client ``wire`` cannot use (one holding a single connection, or a cluster command
    set spanning slots): redis-py's pipeline, with the scripts loaded first."""
    for source in scripts.values():
        target.script_load(source)
    pipe = target.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)  # type: ignore[no-untyped-call]
    return list(pipe.execute())


def _not_run(reply: Any, cluster: RedisCluster | None) -> bool:
    """Whether Redis refused the command without running it, for a reason a resend cures."""
    errors = redis.exceptions
    if cluster is None:  # a single server redirects nothing
        return isinstance(reply, errors.NoScriptError)
    return isinstance(reply, (errors.NoScriptError, errors.AskError, errors.TryAgainError))


def _raised(replies: list[Any]) -> list[Any]:
    failure = next((r for r in replies if isinstance(r, redis.ResponseError)), None)
    if failure is not None:
        raise failure
    return replies


def _first_key(command: Command) -> Any:
    """The first key a command names: after EVALSHA's SHA and key count, else its first
    argument."""
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return command[3]
    return command[1]


def _one_slot(cluster: RedisCluster, commands: Sequence[Command]) -> bool:
    slots = {cluster.keyslot(_first_key(command))  # type: ignore[no-untyped-call]
             for command in commands}
    return len(slots) == 1


def _refresh(cluster: RedisCluster) -> None:
    refresh = getattr(cluster, "refresh", None)  # Sidequest's own cluster client has one
    if refresh is not None:
        refresh()
