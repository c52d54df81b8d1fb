"""The Redis Cluster client: redis-py's RedisCluster, refreshing its slot map at once after
a connection error.

redis-py asks for a topology refresh after a connection error and runs it with a later
command, paced; a pipeline that keeps failing against a dead primary could go on trying it
for as long as the failover takes and longer. Sidequest's loops already back off between
attempts, so each failed attempt re-reads the slot map right away: the first attempt after
a replica is promoted reaches it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from sidequest import keys
from sidequest.errors import ConfigError

_LOST = (redis.ConnectionError, redis.TimeoutError)
#: Raised when no node answers, or none serves the slot: not RedisErrors, so every loop that
#: waits out an outage (``except redis.RedisError``) would miss them and its thread crash.
_NO_NODE = tuple(getattr(redis.exceptions, name) for name in (
    "RedisClusterUnreachableError", "SlotNotCoveredError") if hasattr(redis.exceptions, name))


def _outage(exc: Exception) -> redis.ConnectionError:
    return redis.ConnectionError(
        f"no node of the Redis Cluster serves Sidequest's keys now ({exc})")


class Cluster(RedisCluster):
    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except _LOST:
            self.refresh()
            raise
        except _NO_NODE as exc:
            self.refresh()
            raise _outage(exc) from exc

    def time(self, **kwargs: Any) -> Any:
        """TIME of the primary holding Sidequest's keys (redis-py asks an arbitrary node):
        the clock that scores and periodic ticks are compared with, reachable whenever the
        keys are."""
        owner = self.get_node_from_key(keys.QUEUES)  # type: ignore[no-untyped-call]
        kwargs.setdefault("target_nodes", owner)
        return super().time(**kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        execute = pipe.execute

        def execute_refreshing(raise_on_error: bool = True) -> list[Any]:
            try:
                return list(execute(raise_on_error))
            except _LOST:
                self.refresh()
                raise
            except _NO_NODE as exc:
                self.refresh()
                raise _outage(exc) from exc

        pipe.execute = execute_refreshing
        return pipe

    def refresh(self) -> None:
        """Re-read the slot map now; a failure leaves the old one for the next attempt."""
        # No node answering leaves the caller's error standing; it will try again.
        with contextlib.suppress(redis.RedisError, *_NO_NODE):
            self.nodes_manager.initialize()


#: The first redis-py whose cluster pipelines queue EVALSHA (pushes of unique jobs, putbacks).
NEEDS = (8, 2)


def check_version(version: str = redis.__version__) -> None:
    """A ConfigError naming the fix when the installed redis-py cannot run cluster mode."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < NEEDS:
        raise ConfigError(f"Redis Cluster mode needs redis-py {NEEDS[0]}.{NEEDS[1]} or newer "
                          f"(installed: {version}): pip install 'sidequest[cluster]' "
                          "(redis-py 8.2 needs Python 3.11 or newer)")


def client(nodes: list[tuple[str, int]], **options: Any) -> redis.Redis:
    check_version()
    startup = [ClusterNode(host, port) for host, port in nodes]  # type: ignore[no-untyped-call]
    made: Any = Cluster(startup_nodes=startup, **options)
    return made  # type: ignore[no-any-return]
