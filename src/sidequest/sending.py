"""A push's commands sent so that none is ever sent twice, on a single Redis or a Cluster.

redis-py's pipelines resend their commands after a timeout or a dropped connection, a
cluster pipeline whatever its retry setting; a push whose reply was only late would then be
written twice. Here the commands go out once, through ``wire``, and only those Redis refused
without running them are sent again, each where it belongs:

- NOSCRIPT: the script is loaded on the node that refused it, then its call resent there (a
  restarted or promoted server, or a node new to the cluster, has an empty script cache);
- on a Cluster, MOVED (the slot has a new owner: the slot map is re-read), ASK (the slot is
  migrating and the key is already on the target: resent there, after ASKING) and TRYAGAIN
  (a script's keys are split by a migration for a moment: resent after a pause).

A push's keys all carry one hash tag, so on a Cluster every command goes to one primary: its
own plain connection, which ``wire`` can use. Only a client ``wire`` cannot use (one that
holds a single connection, which ``configure()`` refuses, or handed in by an application)
keeps redis-py's pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.cluster import PRIMARY, ClusterNode, RedisCluster

from sidequest import keys, wire
from sidequest.wire import Command

#: Rounds of resending what was refused: redirects settle in one or two; a migration's
#: TRYAGAIN lasts while the keys of one script are being moved, a few milliseconds each.
ROUNDS = 20
TRY_AGAIN_PAUSE = 0.02

#: Where a command goes: None for the node serving its slot now (the single Redis, or the
#: slot's owner), else the (host, port) an ASK redirect named, to be sent after ASKING.
Route = tuple[str, int] | None
#: Sends commands along a route and returns their replies, error replies in place.
Exchange = Callable[[Route, Sequence[Command]], list[Any]]


def send(target: redis.Redis, commands: Sequence[Command],
         scripts: dict[str, Any] | None = None, atomic: bool = False) -> list[Any]:
    """Send ``commands`` and return their replies; an error reply raises, after the others
    were read. ``scripts`` maps the SHA of each script called by EVALSHA to its source.
    ``atomic``: all of them run or none (on a Redis Cluster, when they share a slot, as a
    push's keys do)."""
    if not commands:
        return []
    scripts = scripts or {}
    if wire.usable(target):
        return _on_one_server(target, commands, scripts, atomic)
    if isinstance(target, RedisCluster) and _one_slot(target, commands):
        exchange = _cluster_exchange(target, _first_key(commands[0]))
        if atomic:
            return _atomic_on_cluster(exchange, commands, scripts)
        return _settled(exchange, commands, scripts, exchange(None, commands), target)
    return _pipelined(target, commands, scripts, atomic)


def _on_one_server(target: redis.Redis, commands: Sequence[Command], scripts: dict[str, Any],
                   atomic: bool) -> list[Any]:
    if atomic:
        return _atomic(lambda batch: wire.answers(target, batch), commands, scripts)
    # The common push: one exchange, and every reply a success.
    replies = wire.answers(target, commands)
    if any(isinstance(reply, redis.ResponseError) for reply in replies):
        return _settled(lambda _, batch: wire.answers(target, batch), commands, scripts,
                        replies)
    return replies


def _atomic(send: Callable[[Sequence[Command]], list[Any]], commands: Sequence[Command],
            scripts: dict[str, Any]) -> list[Any]:
    """``commands`` in one MULTI/EXEC: a push that makes jobs members of a batch must not
    leave the membership written without the jobs (Redis stopped, or the connection cut,
    halfway through the write), or the batch would wait for them for good. The scripts are
    loaded first, in the same write: in a transaction, a call refused for a script not
    loaded would let the commands around it run."""
    head: list[Command] = [("SCRIPT", "LOAD", source) for source in scripts.values()]
    replies = send([*head, ("MULTI",), *commands, ("EXEC",)])
    done = replies[-1]
    if isinstance(done, redis.ResponseError):  # a command refused as it was queued: none ran
        queued = replies[len(head) + 1:-1]
        raise next((r for r in queued if isinstance(r, redis.ResponseError)), done)
    return outcome(list(done), commands)


def _atomic_on_cluster(exchange: Exchange, commands: Sequence[Command],
                       scripts: dict[str, Any]) -> list[Any]:
    """``_atomic`` on the node of the push's slot (every key of a push shares its shard's
    tag). A transaction refused because the slot moved ran nothing: it goes again to the
    slot's new node (the exchange re-read the map); one refused because the slot is moving
    right now is not written, and says so."""
    for _ in range(ROUNDS):
        try:
            return _atomic(lambda batch: exchange(None, batch), commands, scripts)
        except redis.exceptions.MovedError:
            continue
        except redis.exceptions.AskError as exc:
            raise redis.exceptions.TryAgainError(
                f"the slot is moving to another node: {exc}") from exc
    raise redis.exceptions.TryAgainError("the slot kept moving during the push")


def _settled(exchange: Exchange, commands: Sequence[Command], scripts: dict[str, Any],
             replies: list[Any], cluster: RedisCluster | None = None) -> list[Any]:
    """Resend, until none is left or the rounds run out, the commands refused unrun."""
    return _Push(exchange, commands, scripts, replies, cluster).settle()


class _Push:
    def __init__(self, exchange: Exchange, commands: Sequence[Command], scripts: dict[str, Any],
                 replies: list[Any], cluster: RedisCluster | None) -> None:
        self.exchange, self.commands, self.scripts = exchange, commands, scripts
        self.replies, self.cluster = replies, cluster
        self.routes: list[Route] = [None] * len(commands)

    def settle(self) -> list[Any]:
        for _ in range(ROUNDS):
            refused = [i for i, reply in enumerate(self.replies) if self.refused(reply)]
            if not refused or self.failed():
                # A refusal no resend cures: what already ran stays, nothing more is sent.
                return outcome(self.replies, self.commands)
            try:
                self.resend(refused)
            except Exception as exc:
                if self.any_ran():
                    # Part of the push ran: it may have been enqueued, so never "not enqueued".
                    raise wire.PartlyWritten(f"part of the write ran, then: {exc}") from exc
                raise
        leftover = next((r for r in self.replies if self.refused(r)), None)
        if leftover is None:
            return outcome(self.replies, self.commands)
        if self.any_ran():
            raise wire.PartlyWritten(f"Redis kept refusing part of the write: {leftover}")
        if self.cluster is not None:  # none ran: the slot moves for longer than the rounds
            raise redis.exceptions.TryAgainError(f"the slot kept redirecting the push: {leftover}")
        raise leftover

    def refused(self, reply: Any) -> bool:
        return _not_run(reply, self.cluster)

    def failed(self) -> bool:
        """Whether Redis refused a command for good (out of memory, a wrong type, ...)."""
        return any(isinstance(reply, redis.ResponseError) and not self.refused(reply)
                   for reply in self.replies)

    def any_ran(self) -> bool:
        return _any_job_written(self.replies, self.commands)

    def resend(self, refused: list[int]) -> None:
        """Deal with why each refused command was refused, then send each along its route."""
        loaded: set[tuple[Route, str]] = set()
        for index in refused:
            refusal, route = self.replies[index], self.routes[index]
            if isinstance(refusal, redis.exceptions.NoScriptError):
                sha = str(self.commands[index][1])
                if (route, sha) not in loaded and sha in self.scripts:
                    wire.checked(self.exchange(route, [("SCRIPT", "LOAD", self.scripts[sha])]))
                    loaded.add((route, sha))
            elif isinstance(refusal, redis.exceptions.MovedError):
                self.routes[index] = None  # the exchange re-read the slot map on seeing it
            elif isinstance(refusal, redis.exceptions.AskError):
                self.routes[index] = _asked_at(self.cluster, refusal, route,
                                               self.commands[index])
        if any(isinstance(self.replies[i], redis.exceptions.TryAgainError) for i in refused):
            time.sleep(TRY_AGAIN_PAUSE)
        for route in dict.fromkeys(self.routes[i] for i in refused):
            indexes = [i for i in refused if self.routes[i] == route]
            again = self.exchange(route, [self.commands[i] for i in indexes])
            for index, reply in zip(indexes, again, strict=True):
                self.replies[index] = reply


def _asked_at(cluster: RedisCluster | None, refusal: Any, origin: Route,
              command: Command) -> Route:
    """The address an ASK names, as the client reaches it: remapped, and given the host of
    the node that answered when it names only a port."""
    assert cluster is not None  # a single server redirects nothing
    host, port = refusal.host, refusal.port
    if not host and origin is not None:
        host = origin[0]
    elif not host:
        owner = cluster.get_node_from_key(_first_key(command))  # type: ignore[no-untyped-call]
        host = owner.host
    remap = getattr(cluster.nodes_manager, "remap_host_port", None)
    address: tuple[str, int] = remap(host, port) if remap is not None else (host, port)
    return address


def _cluster_exchange(cluster: RedisCluster, key: Any) -> Exchange:
    def exchange(route: Route, batch: Sequence[Command]) -> list[Any]:
        try:
            if route is not None:  # each command after its own ASKING
                asked = [part for command in batch for part in (("ASKING",), command)]
                replies = wire.answers(_node_at(cluster, route), asked)[1::2]
            else:
                node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
                replies = wire.answers(cluster.get_redis_connection(node), batch)
        except wire.ReplyLost:
            raise  # a late reply: the node may be fine; if it died, the next connect fails
        except (redis.ConnectionError, redis.TimeoutError):
            _refresh(cluster)  # the next attempt (a later push, a loop's retry) is rerouted
            raise
        if any(isinstance(r, redis.exceptions.MovedError) for r in replies):
            _refresh(cluster)
        return replies

    return exchange


def _node_at(cluster: RedisCluster, address: tuple[str, int]) -> redis.Redis:
    """The client of the node at ``address``; a node that serves no slot yet (one being
    resharded onto) is missing from the slot map, so it is added to the known nodes."""
    node = cluster.get_node(*address)  # type: ignore[no-untyped-call]
    if node is None:
        node = ClusterNode(*address, server_type=PRIMARY)  # type: ignore[no-untyped-call]
        cluster.nodes_manager.nodes_cache.setdefault(node.name, node)
        node = cluster.nodes_manager.nodes_cache[node.name]
    return cluster.get_redis_connection(node)


def _pipelined(target: redis.Redis, commands: Sequence[Command],
               scripts: dict[str, Any], atomic: bool = False) -> list[Any]:
    """A client ``wire`` cannot use (one holding a single connection, or a cluster command
    set spanning slots): redis-py's pipeline, with the scripts loaded first; a transaction
    when ``atomic``, but on a cluster."""
    for source in scripts.values():
        target.script_load(source)
    pipe = target.pipeline(transaction=atomic and not isinstance(target, RedisCluster))
    for command in commands:
        pipe.execute_command(*command)  # type: ignore[no-untyped-call]
    return outcome(list(pipe.execute(raise_on_error=False)), commands)


def outcome(replies: list[Any], commands: Sequence[Command] | None = None) -> list[Any]:
    """``replies`` when all are successes. Else the first refusal raises: as it is when
    nothing ran, as a PartlyWritten when other commands of the push did run (Redis out of
    memory after the first of them, say), since the push is then in Redis in part. Of
    ``commands`` (the replies' own), the SADD of the queue names writes no job: it alone
    having run, nothing was enqueued."""
    lost = [r for r in replies
            if isinstance(r, Exception) and not isinstance(r, redis.ResponseError)]
    if lost:  # a cluster pipeline's connection error, as a reply: the command may have run
        raise wire.ReplyLost(f"the reply was lost ({lost[0]})") from lost[0]
    failures = [r for r in replies if isinstance(r, redis.ResponseError)]
    if not failures:
        return replies
    # The refusal that says why: not a script missing, which is only what was left to resend.
    failure = next((r for r in failures if not isinstance(r, redis.exceptions.NoScriptError)),
                   failures[0])
    if _any_job_written(replies, commands):
        raise wire.PartlyWritten(f"Redis refused part of the write: {failure}") from failure
    raise failure


def _any_job_written(replies: list[Any], commands: Sequence[Command] | None) -> bool:
    """Whether a command that writes a job succeeded: not the bookkeeping around it (the
    queue names' SADD, which a full Redis may run before it refuses the job after it; a
    stored status's HSET and EXPIRE, in the same transaction but on a cluster)."""
    shown = commands if commands is not None and len(commands) == len(replies) else None
    return any(not isinstance(reply, redis.ResponseError)
               and not (shown is not None and _bookkeeping(shown[i]))
               for i, reply in enumerate(replies))


def _bookkeeping(command: Command) -> bool:
    name = str(command[0]).upper()
    if name == "SADD":
        return len(command) > 1 and _text(command[1]) == keys.QUEUES
    return name in ("HSET", "EXPIRE") and len(command) > 1 and _text(command[1]).startswith(
        keys.status(""))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _not_run(reply: Any, cluster: RedisCluster | None) -> bool:
    """Whether Redis refused the command without running it, for a reason a resend cures."""
    errors = redis.exceptions
    if cluster is None:  # a single server redirects nothing
        return isinstance(reply, errors.NoScriptError)
    return isinstance(reply, (errors.NoScriptError, errors.AskError, errors.TryAgainError))


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
