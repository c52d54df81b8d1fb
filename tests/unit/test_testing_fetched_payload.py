"""Fake mode runs a job on the payload a worker would read, as inline mode does: a scheduled
job has lost ``at`` and gained ``enqueued_at`` (the scheduler moved it to its queue), and a
job pushed for now keeps the ``enqueued_at`` of its push. The stored job is left as it was."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sidequest import Job, testing

seen: list[dict[str, Any]] = []


class FPRecorder(Job):
    def perform(self, tag: str) -> None:
        seen.append(self.payload)


@pytest.fixture(autouse=True)
def fake_mode(fake_without_redis: None) -> Iterator[None]:
    seen.clear()
    yield
    seen.clear()


DRAINS: dict[str, Callable[[], Any]] = {
    "drain": lambda: testing.drain(FPRecorder),
    "class drain": FPRecorder.drain,
    "drain_all": testing.drain_all,
    "perform_one": lambda: testing.perform_one(FPRecorder),
}


@pytest.mark.parametrize("run", DRAINS.values(), ids=DRAINS.keys())
def test_a_drained_scheduled_job_sees_what_a_worker_sees(run: Callable[[], Any]) -> None:
    FPRecorder.perform_in(300, "later")
    [stored] = FPRecorder.jobs
    assert "at" in stored and "enqueued_at" not in stored
    before = time.time()
    run()
    [payload] = seen
    assert "at" not in payload
    assert before <= payload["enqueued_at"] <= time.time()
    assert payload["args"] == ["later"] and payload["jid"] == stored["jid"]
    assert "at" in stored  # what the test read of the queue is not changed under it


@pytest.mark.parametrize("run", DRAINS.values(), ids=DRAINS.keys())
def test_a_job_pushed_for_now_keeps_the_time_of_its_push(run: Callable[[], Any]) -> None:
    FPRecorder.perform_async("now")
    [stored] = FPRecorder.jobs
    time.sleep(0.01)
    run()
    [payload] = seen
    assert payload["enqueued_at"] == stored["enqueued_at"]


def test_the_payload_is_the_same_in_both_modes() -> None:
    FPRecorder.perform_in(300, "x")
    FPRecorder.drain()
    with testing.inline():
        FPRecorder.perform_in(300, "x")
    faked, inlined = seen
    assert sorted(faked) == sorted(inlined)
