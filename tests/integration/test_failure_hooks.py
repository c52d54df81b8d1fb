"""The worker's failure path against a real Redis: the max_retries setting, the order of
retry_in and exhaustion, and the process-wide death and error handlers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, hooks, on_death, on_error

SEEN: list[tuple[str, Any]] = []
LOCK = threading.Lock()


def note(kind: str, value: Any) -> None:
    with LOCK:
        SEEN.append((kind, value))


def seen(kind: str) -> list[Any]:
    with LOCK:
        return [v for k, v in SEEN if k == kind]


@pytest.fixture(autouse=True)
def _handlers() -> Iterator[None]:
    with LOCK:
        SEEN.clear()
    yield
    hooks.death_handlers.clear()
    hooks.error_handlers.clear()


class AlwaysFails(Job):
    def perform(self, tag: str) -> None:
        raise ValueError(f"fails {tag}")

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: Any) -> float | str | None:
        note("retry_in", count)
        return "discard" if payload["args"] == ["discard"] else None

    @classmethod
    def retries_exhausted(cls, payload: Any, exc: BaseException) -> str | None:
        note("exhausted", payload["jid"])
        return "discard" if payload["args"] == ["keep out"] else None


class BadHooks(Job):
    retry = 0

    def perform(self) -> None:
        raise ValueError("fails")

    @classmethod
    def retries_exhausted(cls, payload: Any, exc: BaseException) -> None:
        raise RuntimeError("hook broke")


def entries(r: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(m) for m in r.zrange(key, 0, -1)]


def make_due(r: redis.Redis) -> None:
    """Make the one retry due now instead of after its backoff; wait until it is taken."""
    member = r.zrange("retry", 0, 0)[0]
    r.zadd("retry", {member: time.time() - 1})
    wait_for(lambda: r.zscore("retry", member) is None, what="the retry picked up")


def test_max_retries_setting_limits_retry_true(r: redis.Redis) -> None:
    jid = AlwaysFails.perform_async("x")
    with running_worker(max_retries=1):
        wait_for(lambda: r.zcard("retry") == 1, what="first failure")
        make_due(r)
        (dead,) = wait_for(lambda: entries(r, "dead"), what="dead after one retry")
    assert dead["jid"] == jid and dead["retry_count"] == 1 and r.zcard("retry") == 0
    assert seen("retry_in") == [0]  # not asked on the last failure
    assert seen("exhausted") == [jid]


def test_discard_on_the_last_try_still_goes_dead(r: redis.Redis) -> None:
    jid = AlwaysFails.set(retry=0).perform_async("discard")
    on_death(lambda job, exc: note("death", (job["jid"], str(exc))))
    with running_worker():
        wait_for(lambda: seen("death"), what="the death handler")
        (dead,) = entries(r, "dead")
    assert dead["jid"] == jid and seen("retry_in") == [] and seen("exhausted") == [jid]
    assert seen("death") == [(jid, "fails discard")]


def test_retry_in_discard_drops_and_runs_the_death_handlers(r: redis.Redis) -> None:
    jid = AlwaysFails.set(retry=5).perform_async("discard")
    on_death(lambda job, exc: note("death", job))
    with running_worker():
        (job,) = wait_for(lambda: seen("death"), what="the death handler")
    assert job["jid"] == jid and isinstance(job["discarded_at"], float)
    assert r.zcard("dead") == 0 and r.zcard("retry") == 0 and seen("exhausted") == []


def test_retries_exhausted_returning_discard_skips_the_dead_set(r: redis.Redis) -> None:
    jid = AlwaysFails.set(retry=0).perform_async("keep out")
    on_death(lambda job, exc: note("death", job))
    with running_worker():
        (job,) = wait_for(lambda: seen("death"), what="the death handler")
    assert job["jid"] == jid and "discarded_at" in job and r.zcard("dead") == 0


def test_retry_false_runs_death_handlers_not_the_exhausted_hook(r: redis.Redis) -> None:
    jid = AlwaysFails.set(retry=False).perform_async("off")
    on_death(lambda job, exc: note("death", job["jid"]))
    with running_worker():
        wait_for(lambda: seen("death"), what="the death handler")
    assert seen("death") == [jid] and seen("exhausted") == [] and seen("retry_in") == []
    assert r.zcard("dead") == 0 and r.zcard("retry") == 0


def test_error_handlers_see_every_failure_with_its_job(r: redis.Redis) -> None:
    @on_error
    def report(exc: BaseException, context: dict[str, Any]) -> None:
        note("error", (type(exc).__name__, context["context"], context["job"]["jid"],
                       context.get("queue")))

    jid = AlwaysFails.perform_async("x")
    with running_worker():
        wait_for(lambda: seen("error"), what="the error handler")
        wait_for(lambda: r.zcard("retry") == 1, what="the retry")
    assert seen("error") == [("ValueError", "Job raised exception", jid, "default")]


def test_raising_handlers_and_hooks_are_logged_and_lose_nothing(
    r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    def bad_death(job: Any, exc: BaseException) -> None:
        raise RuntimeError("death handler broke")

    def bad_error(exc: BaseException, context: dict[str, Any]) -> None:
        raise RuntimeError("error handler broke")

    on_death(bad_death)
    on_death(lambda job, exc: note("death", job["jid"]))  # still runs after a raising one
    on_error(bad_error)
    on_error(lambda exc, context: note("error", context["context"]))
    jid = BadHooks.perform_async()
    with running_worker():
        (dead,) = wait_for(lambda: entries(r, "dead"), what="the dead entry")
        wait_for(lambda: "Job raised exception" in seen("error"), what="the error handlers")
    assert dead["jid"] == jid and seen("death") == [jid]
    assert sorted(seen("error")) == ["Error calling death handler",
                                     "Error calling retries_exhausted", "Job raised exception"]
    logged = caplog.text
    assert "hook broke" in logged and "death handler broke" in logged
    assert "error handler broke" in logged


def test_error_handlers_see_an_unreadable_payload(r: redis.Redis) -> None:
    on_error(lambda exc, context: note("error", (context["context"], context["jobstr"])))
    r.lpush("queue:default", "{not json")
    with running_worker():
        wait_for(lambda: seen("error"), what="the error handler")
        wait_for(lambda: r.zcard("dead") == 1, what="the dead entry")
    assert seen("error") == [("Invalid JSON for job", "{not json")]
