"""Enqueueing writes exactly Sidekiq's layout: LPUSH queue:NAME + SADD queues, or ZADD schedule."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

import sidequest
from sidequest import Job, RedisUnavailable, job, middleware


class Mailer(Job):
    queue = "mailers"
    retry = 5

    def perform(self, user_id: int, template: str = "welcome") -> None:
        pass


@job(queue="low", retry=3)
def clear_cache(key: str) -> None:
    pass


def queued(r: redis.Redis, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in r.lrange(f"queue:{queue}", 0, -1)]


def test_perform_async_writes_sidekiq_payload(r: redis.Redis) -> None:
    before = time.time()
    jid = Mailer.perform_async(42, "hello ✓")
    assert re.fullmatch(r"[0-9a-f]{24}", jid)
    raw = r.lrange("queue:mailers", 0, -1)
    assert len(raw) == 1 and ", " not in raw[0] and '": ' not in raw[0]  # compact JSON
    payload = json.loads(raw[0])
    assert payload["class"] == f"{__name__}.Mailer"
    assert payload["args"] == [42, "hello ✓"]
    assert payload["jid"] == jid and payload["queue"] == "mailers" and payload["retry"] == 5
    for field in ("created_at", "enqueued_at"):
        assert isinstance(payload[field], float) and before <= payload[field] <= time.time()
    assert r.smembers("queues") == {"mailers"}


def test_function_job_and_set_overrides(r: redis.Redis) -> None:
    clear_cache.perform_async("home")
    Mailer.set(queue="critical", retry=False, tags=["vip"]).perform_async(7)
    (low,) = queued(r, "low")
    assert low["class"] == f"{__name__}.clear_cache" and low["retry"] == 3
    (critical,) = queued(r, "critical")
    assert critical["retry"] is False and critical["tags"] == ["vip"]
    assert r.smembers("queues") == {"low", "critical"}


def test_perform_in_goes_to_schedule_without_at_or_enqueued_at(r: redis.Redis) -> None:
    before = time.time()
    Mailer.perform_in(300, 1)
    Mailer.perform_in(timedelta(hours=1), 2)
    Mailer.perform_at(datetime.now(timezone.utc) + timedelta(days=1), 3)
    entries = r.zrange("schedule", 0, -1, withscores=True)
    assert len(entries) == 3 and r.llen("queue:mailers") == 0
    for (member, score), offset in zip(entries, (300, 3600, 86400), strict=True):
        payload = json.loads(member)
        assert "at" not in payload and "enqueued_at" not in payload
        assert before + offset - 1 <= score <= time.time() + offset + 1


def test_time_in_the_past_is_queued_now(r: redis.Redis) -> None:
    Mailer.perform_in(-5, 1)
    Mailer.perform_at(time.time() - 60, 2)
    assert r.zcard("schedule") == 0
    assert [p["args"][0] for p in queued(r, "mailers")] == [2, 1]


def test_perform_bulk_batches_and_shares_created_at(r: redis.Redis) -> None:
    jids = Mailer.perform_bulk([[i] for i in range(2500)])
    assert len(jids) == 2500 and len(set(jids)) == 2500
    payloads = queued(r, "mailers")
    assert len(payloads) == 2500
    assert len({p["created_at"] for p in payloads}) == 1
    assert {p["jid"] for p in payloads} == set(jids)


def test_non_json_args_raise_before_anything_is_written(r: redis.Redis) -> None:
    for bad in ((1, 2), {1, 2}, b"x", datetime.now(), float("nan"), {1: "a"}, object()):
        with pytest.raises(TypeError, match="args"):
            Mailer.perform_async(bad)
    with pytest.raises(TypeError):
        Mailer.perform_bulk([[1], [(2,)]])
    assert r.dbsize() == 0


def test_client_middleware_changes_and_cancels(r: redis.Redis) -> None:
    def stamp(payload: dict[str, Any], queue: str, call_next: Any) -> Any:
        if payload["args"] == ["skip"]:
            return None
        payload["locale"] = "fr"
        return call_next()

    middleware.client.add(stamp)
    try:
        assert clear_cache.perform_async("skip") is None
        clear_cache.perform_async("keep")
    finally:
        middleware.client.remove(stamp)
    (payload,) = queued(r, "low")
    assert payload["args"] == ["keep"] and payload["locale"] == "fr"


def test_push_during_outage_raises_clear_error() -> None:
    sidequest.configure("redis://:secret@127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        with pytest.raises(RedisUnavailable, match="not enqueued") as info:
            Mailer.perform_async(1)
        assert "secret" not in str(info.value) and "***" in str(info.value)
    finally:
        sidequest.connection.reset()
