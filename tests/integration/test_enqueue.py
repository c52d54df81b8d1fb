"""``sidequest.enqueue``: a job pushed by name, from code that cannot import its class."""

from __future__ import annotations

import json
import time

import pytest
import redis

import sidequest
from helpers import running_worker, wait_for

pytestmark = pytest.mark.redis
RECORDED: list[tuple[int, str]] = []


class ByName(sidequest.Job):
    name = "tests.ByName"

    def perform(self, n: int, text: str) -> None:
        RECORDED.append((n, text))


def test_a_job_enqueued_by_name_runs(r: redis.Redis) -> None:
    RECORDED.clear()
    jid = sidequest.enqueue("tests.ByName", 7, "é")
    (raw,) = r.lrange("queue:default", 0, -1)
    payload = json.loads(raw)
    assert payload["jid"] == jid and payload["class"] == "tests.ByName"
    assert payload["args"] == [7, "é"] and payload["retry"] is True
    with running_worker():
        wait_for(lambda: RECORDED == [(7, "é")], what="the job to run")


def test_options_delay_and_at(r: redis.Redis) -> None:
    jid = sidequest.enqueue("Reports::Nightly", 1, queue="ruby", retry=3, tags=("a",))
    payload = json.loads(r.lrange("queue:ruby", 0, -1)[0])
    assert (payload["jid"], payload["retry"], payload["tags"]) == (jid, 3, ["a"])
    later = sidequest.enqueue("tests.ByName", 1, "x", delay=60)
    at = sidequest.enqueue("tests.ByName", 2, "y", at=time.time() + 120)
    scheduled = {json.loads(m)["jid"]: s for m, s in r.zrange("schedule", 0, -1,
                                                            withscores=True)}
    assert set(scheduled) == {later, at}
    assert scheduled[later] == pytest.approx(time.time() + 60, abs=5)


@pytest.mark.parametrize(("call", "error", "says"), [
    (lambda: sidequest.enqueue("", 1), ValueError, "the job's name"),
    (lambda: sidequest.enqueue("X", object()), TypeError, "args"),
    (lambda: sidequest.enqueue("X", queue=""), ValueError, "queue"),
    (lambda: sidequest.enqueue("X", retries=3), sidequest.ConfigError, "retries"),
    (lambda: sidequest.enqueue("X", delay=1, at=2), ValueError, "not both"),
])
def test_bad_calls_write_nothing(r: redis.Redis, call: object, error: type, says: str) -> None:
    with pytest.raises(error, match=says):
        call()  # type: ignore[operator]
    assert r.dbsize() == 0


class KwFlaky(sidequest.Job):
    """Fails its first run, so the retry is seen to keep the keywords."""

    name = "tests.KwFlaky"
    RUNS: list[dict[str, object]] = []

    def perform(self, n: int, *, label: str, extra: dict[str, int] | None = None) -> None:
        KwFlaky.RUNS.append({"n": n, "label": label, "extra": extra})
        if len(KwFlaky.RUNS) == 1:
            raise RuntimeError("first run fails")


def test_a_worker_runs_keyword_arguments_and_a_retry_keeps_them(r: redis.Redis) -> None:
    KwFlaky.RUNS.clear()
    KwFlaky.perform_async(3, label="é", extra={"a": 1})
    with running_worker():
        wait_for(lambda: r.zcard("retry") == 1, what="the first failure to be in retry")
        (entry,) = r.zrange("retry", 0, -1)
        assert json.loads(entry)["kwargs"] == {"label": "é", "extra": {"a": 1}}
        r.zadd("retry", {entry: 0})  # due now
        wait_for(lambda: len(KwFlaky.RUNS) == 2, what="the retry to run")
    assert KwFlaky.RUNS[1] == {"n": 3, "label": "é", "extra": {"a": 1}}
