"""Clients by URL kind: a plain Redis (checked not to be a Cluster node), a Sentinel service
and a Redis Cluster (connection.py makes every client and calls these)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from redis.sentinel import Sentinel

from sidequest import cluster as cluster_keys
from sidequest import sentinel_watch, url_problems, urls


def plain(target: str, options: dict[str, Any]) -> redis.Redis:
    """A client of one server, whose every new connection first checks that the server is
    not a Redis Cluster node: a redis:// URL at one would write keys without the hash tag
    the cluster workers read, wherever that node serves their slots, and strand the jobs."""
    own = options.pop("redis_connect_func", None)  # an application's, from configure()
    return redis.Redis.from_url(target, redis_connect_func=lambda conn: _not_a_cluster_node(
        conn, own), **options)


def _not_a_cluster_node(conn: Any, own: Callable[[Any], None] | None) -> None:
    if own is not None:
        own(conn)
    else:
        # What redis-py runs when given no connect function, without a health check: a
        # fresh socket needs none, and one would connect again from inside this connect.
        handshake = getattr(conn, "on_connect_check_health", None)
        if handshake is not None:
            handshake(check_health=False)
        else:  # redis-py before 6
            conn.on_connect()
    try:
        conn.send_command("INFO", "cluster", check_health=False)
        info = conn.read_response()
    except redis.ResponseError:
        return  # INFO not allowed to this user, or a Redis-like server without it
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    if "cluster_enabled:1" in text:
        conn.disconnect()  # else the pool would hand out the connection as ready
        where = (f"unix://{conn.path}" if hasattr(conn, "path")
                 else f"redis://{conn.host}:{conn.port}/{conn.db}")
        raise url_problems.cluster_node(where, "cluster mode is enabled on it")


def sentinel(target: str, options: dict[str, Any]) -> redis.Redis:
    parts = urlsplit(target)
    hosts = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.partition(":")
        hosts.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"{urls.redacted(target)}: name the Sentinel service, e.g. /mymaster/0")
    service, db = path[0], int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]  # typed in redis-py 8.2
        hosts, sentinel_kwargs={"password": parts.password}, **options
    )
    master = sentinel.master_for(  # type: ignore[no-untyped-call,unused-ignore]
        service, db=db, password=parts.password, username=parts.username
    )
    sentinel_watch.watch.add(master.connection_pool)
    return cast(redis.Redis, master)


#: A Redis Cluster that cannot serve now (a primary down or failing over, no node answering):
#: an outage, to wait out or report as one, not a wrong setting (by name: redis-py before 8.2
#: lacks some of them). ClusterDownError and
#: TryAgainError are also ResponseErrors, which readers otherwise take for odd data.
CLUSTER_UNAVAILABLE: tuple[type[Exception], ...] = tuple(
    getattr(redis.exceptions, name) for name in (
        "ClusterDownError", "TryAgainError", "SlotNotCoveredError",
        "RedisClusterUnreachableError") if hasattr(redis.exceptions, name))


def cluster(target: str, options: dict[str, Any]) -> redis.Redis:
    """A RedisCluster client; every key carries one hash tag, so it talks to one primary."""
    parts = urlsplit(target)
    # redis.Redis's connection-retry options have no RedisCluster equivalent: the cluster
    # client retries on its own, refreshing the slot map after MOVED or a failover.
    for name in ("retry_on_error", "health_check_interval"):
        options.pop(name, None)
    try:  # the client reads the slot map from the nodes now, so a plain Redis shows here
        return cluster_keys.client(urls.cluster_nodes(target), password=parts.password,
                                   username=parts.username, ssl=target.startswith("rediss+"),
                                   **options)
    except redis.exceptions.RedisClusterException as exc:
        # A password missing or refused: redis-py wraps the node's AuthenticationError in the
        # error it raises when no startup node can be used, which reads as an outage.
        refused = url_problems.wrong_credentials(exc.__cause__, urls.redacted(target))
        if refused is not None:
            raise refused from exc
        # No startup node answers, or the nodes serve only part of the slots (a primary and
        # its replicas down): the outage a plain URL's unreachable server is, so that a
        # push says RedisUnavailable and a worker waits, as on a plain Redis.
        if isinstance(exc, CLUSTER_UNAVAILABLE):
            reason = str(exc).rpartition("reachable node: ")[2] or str(exc)
            raise redis.ConnectionError(f"no node of the cluster answers ({reason})") from exc
        if "slots are not covered" in str(exc):
            raise redis.ConnectionError(f"the cluster serves only part of its slots ({exc}):"
                                        f" a primary and its replicas are down") from exc
        problem = url_problems.plain_behind_cluster_url(exc, urls.redacted(target))
        if problem is None:
            raise
        raise problem from exc
