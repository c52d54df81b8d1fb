"""Emptying an in-progress list (graceful stop, reaping a dead process) with jobs that do not
name their queue, as Ruby's JobSet#schedule and other clients write them."""

from __future__ import annotations

import json
import threading

import redis

from helpers import FAST
from sidequest import connection, keys
from sidequest.config import build
from sidequest.worker.fetch import Fetcher
from sidequest.worker.requeue import requeue_list

BARE = json.dumps({"class": "Bare", "args": [1], "jid": "b" * 24})


def fetch_bare(r: redis.Redis, identity: str) -> bytes:
    r.lpush(keys.queue("low"), BARE, "not json")
    config = build(**FAST, queues=[("low", 1)])
    works = Fetcher(config, identity, connection.client()).fetch(10, [])
    assert [w.queue for w in works] == ["low", "low"]
    return works[0].raw


def test_a_graceful_stop_puts_a_job_without_queue_back_where_it_was_fetched(
    r: redis.Redis,
) -> None:
    raw = fetch_bare(r, "host:1:a")
    requeued, poisoned = requeue_list(connection.client(), "host:1:a", "stop", max_deaths=3,
                                      deaths_ttl=60, fetched_from={raw: "low"})
    assert (requeued, poisoned) == (1, 1)  # only the unreadable one is poison
    assert r.lrange(keys.queue("low"), 0, -1) == [BARE]
    assert r.lrange(keys.POISON, 0, -1) == ["not json"]
    assert r.llen(keys.inprogress("host:1:a")) == 0
    assert "host:1:a" not in r.smembers(keys.SQ_PROCESSES)


def test_reaping_sends_a_job_without_queue_to_default_and_counts_its_death(
    r: redis.Redis,
) -> None:
    fetch_bare(r, "host:1:b")
    r.set(keys.lease("host:1:b"), "1")
    assert requeue_list(connection.client(), "host:1:b", "reap", max_deaths=3,
                        deaths_ttl=60) == (-1, 0)  # alive: left alone
    assert r.llen(keys.inprogress("host:1:b")) == 2
    r.delete(keys.lease("host:1:b"))
    assert requeue_list(connection.client(), "host:1:b", "reap", max_deaths=3,
                        deaths_ttl=60) == (1, 1)
    assert r.lrange(keys.queue("default"), 0, -1) == [BARE]
    assert r.get(keys.deaths("b" * 24)) == "1"
    assert 0 < r.ttl(keys.deaths("b" * 24)) <= 60


def test_four_reapers_at_once_push_each_job_once(
    r: redis.Redis,
) -> None:
    fetch_bare(r, "host:1:c")
    client = connection.client()
    results: list[tuple[int, int]] = []
    threads = [threading.Thread(target=lambda: results.append(requeue_list(
        client, "host:1:c", "reap", max_deaths=3, deaths_ttl=60))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sum(n for n, _ in results) == 1 and sum(p for _, p in results) == 1
    assert r.llen(keys.queue("default")) == 1 and r.llen(keys.POISON) == 1


def test_a_pill_filed_by_one_reaper_is_not_filed_again_by_another(r: redis.Redis) -> None:
    # Two reapers whose burials overlap (the first's lock lapsed mid-way): both read the same
    # pill from the poison list; the dead set must hold it once, its death reported once.
    from sidequest import hooks
    from sidequest.worker.reaper import Reaper

    pill = json.dumps({"class": "Pill", "args": [], "jid": "p" * 24, "queue": "low"})
    r.lpush(keys.POISON, pill)
    config = build(**FAST)
    deaths: list[str] = []
    hooks.death_handlers.append(lambda job, exc: deaths.append(job["jid"]))
    try:
        first, second = (Reaper(config, f"host:{n}:r", connection.client(), threading.Event())
                         for n in (1, 2))
        first._bury(pill.encode())
        second._bury(pill.encode())
    finally:
        hooks.death_handlers.pop()
    assert r.llen(keys.POISON) == 0
    assert [json.loads(entry)["jid"] for entry in r.zrange(keys.DEAD, 0, -1)] == ["p" * 24]
    assert deaths == ["p" * 24]
