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
