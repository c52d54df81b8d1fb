"""Reaching Redis as a worker starts: wait while it does not answer (saying so once), and
warn about a setting of it that can lose jobs behind the worker's back."""

from __future__ import annotations

import logging
import time
from typing import cast

import redis

from sidequest import connection, keys, url_problems

log = logging.getLogger("sidequest")


def check_redis(client: redis.Redis) -> None:
    """Warn about Redis settings that can lose jobs behind our back."""
    try:
        if hasattr(client, "get_node_from_key"):  # a Cluster: the primary of our keys, not
            # whichever node the client asks by default
            policy = cast(dict[str, str], client.config_get(
                "maxmemory-policy", target_nodes=client.get_node_from_key(keys.QUEUES)))
        else:
            policy = cast(dict[str, str], client.config_get("maxmemory-policy"))
    except redis.ResponseError:
        return  # CONFIG is often disabled on managed Redis; nothing to check then
    value = policy.get("maxmemory-policy", "noeviction")
    if value != "noeviction":
        log.warning(
            "Redis maxmemory-policy is %r: when memory runs out Redis will silently delete"
            " keys, queued jobs included. Set it to 'noeviction' (CONFIG SET maxmemory-policy"
            " noeviction, and in redis.conf) so that pushes fail loudly instead.", value
        )


def first_client() -> redis.Redis:
    """The process's first client. A Redis Cluster client reads the slot map as it is made:
    while no node answers, wait, as ``start`` waits for a plain Redis (the other clients
    are made right after, from the same answering cluster)."""
    delay, warned = 0.1, False
    while True:
        try:
            return connection.new_client(retries=0)
        except redis.ConnectionError as exc:
            warned = warned or say_waiting(exc)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def say_waiting(exc: Exception) -> bool:
    """Say once that the worker waits for Redis; True, for the caller's "said" flag."""
    log.warning("waiting for Redis at %s: %s", connection.redacted(), url_problems.readable(exc))
    return True


class Outage:
    """A background loop's Redis trouble, said once when it starts and once when it ends:
    a loop that retries every few seconds would otherwise log a line per try, and its last
    warning would read as if Redis were still failing."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.failing = False

    def ok(self) -> None:
        if self.failing:
            log.warning("%s: Redis is reachable again", self.who)
        self.failing = False

    def failed(self, exc: redis.RedisError) -> None:
        if not self.failing:
            log.warning("%s: Redis error, will retry: %s", self.who, url_problems.readable(exc))
        self.failing = True
