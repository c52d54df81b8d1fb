"""A batch's Redis failures, said as a push's are: what the failure left undone (a caller's
``except sidequest.RedisUnavailable`` covers batches too)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

from sidequest import connection, url_problems, wire
from sidequest.errors import RedisUnavailable


@contextlib.contextmanager
def unreachable(shard: str, consequence: str, maybe: str | None = None) -> Iterator[None]:
    """A connection failure as a RedisUnavailable that says what it left undone, as a push's
    does (a caller's ``except sidequest.RedisUnavailable`` then covers batches too);
    ``maybe`` instead when the write may have reached Redis (a reply lost or late)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if maybe is not None and wire.maybe_sent(exc):
            consequence = maybe
        where = connection.redacted(connection.shard_url(shard))
        raise RedisUnavailable(f"could not reach Redis at {where}"
                               f" ({url_problems.readable(exc)}); {consequence}") from exc
    except redis.ResponseError as exc:  # (MasterDownError, a ClusterDownError, is one)
        if not url_problems.refused_for_now(exc):
            raise
        where = connection.redacted(connection.shard_url(shard))
        raise RedisUnavailable(f"Redis at {where} refuses writes for now ({exc}): too few"
                               f" replicas are in reach, as during a failover; {consequence}"
                               ) from exc
