"""A worker's dead_max_jobs and dead_timeout reach every move into Dead. A starting worker
writes them to Redis (``sq:dead_limits``), and a Kill through the API, or a job dead of
over-limit reschedules, trims Dead by them. Before, those trimmed by Sidekiq's defaults
whatever the workers' settings: a team that kept dead jobs 400 days lost its 200-day-old
ones at the next Kill from the dashboard."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import pytest
import redis

from helpers import running_worker
from sidequest import keys, limiter, morgue
from sidequest.api import DeadSet, RetrySet
from sidequest.limiter import OverLimit
from sidequest.worker import overlimit
from web_helpers import failed

DAY = 86400.0
LONG = 400 * DAY  # the team's dead_timeout
LIMITS_KEY = "sq:dead_limits"  # written by hand where a test needs no worker


def bury(r: redis.Redis, jid: str, days_ago: float) -> None:
    r.zadd("dead", {failed(jid): time.time() - days_ago * DAY})


def retrying(r: redis.Redis, *jids: str) -> None:
    r.zadd("retry", {failed(jid): time.time() + 60 + i for i, jid in enumerate(jids)})


def dead_jids(r: redis.Redis) -> list[str]:
    return [json.loads(raw)["jid"] for raw in cast(list[str], r.zrange("dead", 0, -1))]


def test_a_starting_worker_publishes_its_dead_limits(r: redis.Redis) -> None:
    with running_worker(dead_max_jobs=5, dead_timeout=LONG):
        assert r.hgetall(LIMITS_KEY) == {"max_jobs": "5", "timeout": repr(LONG)}
    # Kept after it stops: the last worker that started sets them.
    assert r.hgetall(LIMITS_KEY) == {"max_jobs": "5", "timeout": repr(LONG)}


def test_a_kill_through_the_api_trims_by_the_workers_limits(r: redis.Redis) -> None:
    with running_worker(dead_max_jobs=5, dead_timeout=LONG):
        pass
    bury(r, "old", 200)
    bury(r, "recent", 1)
    retrying(r, "r0")
    (entry,) = list(RetrySet())
    assert entry.kill()
    assert dead_jids(r) == ["old", "recent", "r0"], "200 days is within the 400 kept"
    for i in range(4):
        DeadSet().kill(failed(f"k{i}"))
    assert dead_jids(r) == ["r0", "k0", "k1", "k2", "k3"], "at most 5, oldest out first"


def test_a_whole_set_kill_reads_the_limits_once(r: redis.Redis,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    r.hset(LIMITS_KEY, mapping={"max_jobs": "5", "timeout": repr(LONG)})
    reads: list[Any] = []
    real = morgue.limits

    def counted(client: Any) -> tuple[int, float]:
        reads.append(client)
        return real(client)

    monkeypatch.setattr(morgue, "limits", counted)  # as api.sets calls it
    bury(r, "old", 200)
    retrying(r, *(f"r{i}" for i in range(250)))  # three pages of bulk.move_all
    assert RetrySet().kill_all() == 250
    assert len(reads) == 1
    assert dead_jids(r) == [f"r{i}" for i in range(245, 250)]


def test_the_defaults_apply_until_a_worker_has_published(r: redis.Redis) -> None:
    bury(r, "old", 200)
    DeadSet().kill(failed("k0"))
    assert dead_jids(r) == ["k0"], "nothing published: 180 days, the default"
    r.hset(LIMITS_KEY, mapping={"max_jobs": "0", "timeout": "soon"})
    bury(r, "old", 200)
    DeadSet().kill(failed("k1"))
    assert dead_jids(r) == ["k0", "k1"], "unreadable limits: the defaults"
    r.hset(LIMITS_KEY, mapping={"max_jobs": "5", "timeout": repr(LONG)})
    bury(r, "old", 200)
    DeadSet().kill(failed("k2"))
    assert dead_jids(r) == ["old", "k0", "k1", "k2"]


def test_a_job_dead_of_over_limit_reschedules_goes_by_the_published_limits(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    r.hset(LIMITS_KEY, mapping={"max_jobs": "5", "timeout": repr(LONG)})
    monkeypatch.setattr(limiter, "max_reschedules", 0)  # the first reschedule kills it
    bury(r, "old", 200)
    bury(r, "recent", 1)
    for i in range(4):
        payload = json.loads(failed(f"o{i}"))
        overlimit.reschedule(payload, "default", OverLimit("gateway", 1.0))
        if i == 0:
            assert dead_jids(r) == ["old", "recent", "o0"], "200 days is within the 400"
    assert dead_jids(r) == ["recent", "o0", "o1", "o2", "o3"]


def test_a_refused_read_of_the_limits_is_no_default(r: redis.Redis, redis_url: str) -> None:
    """A dashboard user whose ACL leaves out sq:dead_limits read "nothing published" and
    trimmed Dead by the defaults: the loss the published limits are there to prevent."""
    from urllib.parse import urlsplit

    r.execute_command("ACL", "SETUSER", "dashonly", "on", ">pw-dash", "~dead", "+@all")
    try:
        where = urlsplit(redis_url)
        limited = redis.Redis(host=where.hostname, port=where.port, username="dashonly",
                              password="pw-dash")
        with pytest.raises(redis.ResponseError, match="no permissions"):
            morgue.limits(limited)
        limited.close()
    finally:
        r.execute_command("ACL", "DELUSER", "dashonly")
    r.set(keys.DEAD_LIMITS, "not a hash")  # another program's key: nothing published
    assert morgue.limits(r) == (morgue.DEAD_MAX_JOBS, morgue.DEAD_TIMEOUT)
