"""Saying that Redis lost data behind a running worker (a restart without persistence, a
flush, a failover to a replica that lacked recent writes, an eviction), and what Redis
itself tells of why: the jobs that were queued, scheduled or waiting to retry went with it,
and nothing else in the worker notices."""

from __future__ import annotations

import logging
from typing import Any

import redis

log = logging.getLogger("sidequest")


class Server:
    """Which Redis server answers (its run id, new at each start): a loss on another server
    than the one remembered came with a restart or a failover, one on the same with a flush
    or an eviction."""

    def __init__(self) -> None:
        self.run_id: str | None = None

    def remember(self, client: redis.Redis, key: str) -> None:
        """Note the server that holds ``key`` (the process record)."""
        self.run_id = _run_id(_info(client, key))

    def say_lost(self, client: redis.Redis, key: str, seconds: float) -> None:
        info = _info(client, key)
        log.error("Redis lost this worker's process record %.0f s after writing it, well"
                  " before its expiry: Redis lost data (%s). Jobs queued, scheduled or waiting"
                  " to retry before then may be gone; those running here carry on. To keep"
                  " jobs across a Redis restart, turn on persistence (appendonly yes) and keep"
                  " maxmemory-policy noeviction.", seconds, self._cause(info, seconds))
        self.run_id = _run_id(info)  # a later loss is judged against this server

    def _cause(self, info: dict[str, Any] | None, seconds: float) -> str:
        run_id = _run_id(info)
        if info is None or run_id is None or self.run_id is None:
            # INFO refused (managed Redis), or no run id in its answer
            return "restarted without persistence, flushed, failed over, or evicting keys"
        uptime = int(info.get("uptime_in_seconds", 0))
        saved = "appendonly is on" if int(info.get("aof_enabled", 0)) else "appendonly is off"
        policy = str(info.get("maxmemory_policy", "noeviction"))
        if run_id != self.run_id:
            if uptime <= seconds + 5:  # it started since the record was written
                return f"it restarted {uptime} s ago and {saved}"
            return ("another Redis server answers than before: a failover to a replica that"
                    " lacked recent writes")
        if policy != "noeviction":
            return f"its maxmemory-policy is {policy}, which deletes keys when memory runs out"
        return (f"the same server, up {uptime} s: flushed (FLUSHALL, FLUSHDB), or its keys"
                " deleted by another client")


def _info(client: redis.Redis, key: str) -> dict[str, Any] | None:
    """INFO of the server holding ``key``: on a Redis Cluster, its primary, not whichever
    node the client asks by default."""
    try:
        if hasattr(client, "get_node_from_key"):
            info: Any = client.info(
                target_nodes=client.get_node_from_key(key))
        else:
            info = client.info()
    except redis.RedisError:
        return None
    return info if isinstance(info, dict) else None


def _run_id(info: dict[str, Any] | None) -> str | None:
    value = None if info is None else info.get("run_id")
    return value if isinstance(value, str) else None
