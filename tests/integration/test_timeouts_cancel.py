"""Time limits and cancellation: a spinning thread job and a sleeping async job fail with
JobTimeout at their deadline; a cancelled job never starts, a running one sees
``self.cancelled()`` within a second (an async one is cancelled); ``self.stopping()`` is true
during a graceful stop. Real Redis, in-process workers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job
from sidequest.api import Queue, RetrySet, ScheduledSet, cancel

events: list[tuple[str, float]] = []
started = threading.Event()
async_started = threading.Event()


def note(what: str) -> None:
    events.append((what, time.time()))


class Spin(Job):
    timeout = 1
    retry = 1

    def perform(self) -> None:
        note("start")
        n = 0
        while True:  # pure Python: the JobTimeout lands at the next instruction
            n += 1


class Nap(Job):
    timeout = 0.5
    retry = 1

    async def perform(self) -> None:
        note("start")
        await asyncio.sleep(30)


class Steps(Job):
    """A long job that checks for cancellation or a stop between steps."""

    def perform(self) -> None:
        started.set()
        for _ in range(3000):
            if self.cancelled():
                note("cancelled")
                return
            if self.stopping():
                note("stopping")
                return
            time.sleep(0.01)
        note("finished")


class AsyncSteps(Job):
    async def perform(self) -> None:
        async_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            note("async cancelled")
            raise


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    events.clear()
    started.clear()
    async_started.clear()


def _failure_at() -> tuple[Any, float]:
    (entry,) = wait_for(lambda: list(RetrySet()), timeout=10, what="the timeout's failure")
    return entry, entry.item["failed_at"]


def test_a_spinning_thread_job_times_out_at_its_deadline() -> None:
    Spin.perform_async()
    with running_worker():
        entry, failed_at = _failure_at()
    assert entry.item["error_class"].endswith("JobTimeout")
    # Its 1 s deadline, plus the watchdog's 0.1 s tick and a loaded machine's slack.
    assert 0.9 <= failed_at - dict(events)["start"] <= 2.0


def test_a_sleeping_async_job_times_out() -> None:
    Nap.perform_async()
    with running_worker():
        entry, _ = _failure_at()
    assert entry.item["error_class"].endswith("JobTimeout")
    assert "0.5 s" in entry.item["error_message"]


def test_a_cancelled_job_never_starts(r: redis.Redis) -> None:
    queued = Steps.perform_async()
    scheduled = Steps.perform_in(3600)
    assert queued and scheduled
    assert cancel(scheduled) is True and ScheduledSet().size == 0
    assert cancel(queued) is False  # still queued: dropped when fetched
    with running_worker():
        wait_for(lambda: Queue("default").size == 0, what="the queue to be emptied")
        time_limit = time.monotonic() + 1  # longer than the cancel watcher's look
        wait_for(lambda: time.monotonic() > time_limit, what="a moment")
    assert not started.is_set() and RetrySet().size == 0


def test_running_jobs_see_their_cancellation_within_a_second(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sidequest")
    jid = Steps.perform_async()
    async_jid = AsyncSteps.perform_async()
    unrun = Steps.perform_async()
    expired = Steps.set(expires_in=0.01).perform_async()
    assert jid and async_jid and unrun and expired
    cancel(unrun)
    past = time.time() + 0.05  # the expiring job's deadline is behind when it is fetched
    wait_for(lambda: time.time() > past, what="its deadline to pass")
    with running_worker():
        # Both started: an async job fetched but still waiting for the loop is not
        # cancelled there, only dropped when it gets its slot (it would never say so).
        wait_for(lambda: started.is_set() and async_started.is_set(), what="both to start")
        asked = time.time()
        cancel(jid)
        cancel(async_jid)
        wait_for(lambda: {"cancelled", "async cancelled"} <= {e for e, _ in events},
                 timeout=5, what="both jobs to see the cancellation")
        wait_for(lambda: Queue("default").size == 0, what="the unrun jobs to be dropped")
    seen = dict(events)
    assert seen["cancelled"] - asked < 1.5
    assert RetrySet().size == 0, "a cancelled job is not a failure"
    # Each end line says how it ended: a bare "done" read as a job done.
    ends = {getattr(record, "jid", None): record.getMessage() for record in caplog.records
            if " done" in record.getMessage()}
    assert ends[jid].endswith(" done: cancelled"), ends
    assert ends[async_jid].endswith(" done: cancelled"), ends
    assert ends[unrun].endswith(" done: cancelled, not run"), ends
    assert ends[expired].endswith(" done: expired, not run"), ends


def test_stopping_is_true_during_a_graceful_stop() -> None:
    Steps.perform_async()
    with running_worker():
        wait_for(started.is_set, what="the job to start")
    assert [e for e, _ in events] == ["stopping"]


class Resumes(Job):
    """The README's resume pattern: on a stop, push the rest and return."""

    def perform(self, start: int = 0) -> None:
        events.append(("run", time.time()))
        started.set()
        for i in range(start, 3000):
            if self.stopping():
                Resumes.perform_async(i)
                return
            steps.append(i)
            time.sleep(0.01)


steps: list[int] = []


def test_stopping_turns_true_when_fetching_stops_not_before(r: redis.Redis) -> None:
    """A stop is asked (TERM) before the worker quiets (its main thread acts on it up to a
    tenth of a second later). Had stopping() turned true at the ask, the job would push its
    remainder, and the still-fetching worker would take it back and run it again, dozens of
    times, until it quieted."""
    steps.clear()
    Resumes.perform_async()
    with running_worker(embedded=False) as launcher:
        wait_for(started.is_set, what="the job to start")
        launcher.signal("TERM")  # asked; no main loop here to act on it
        asked = len(steps)
        wait_for(lambda: len(steps) >= asked + 20, what="20 more steps after the ask")
    assert [e for e, _ in events] == ["run"], "it ran once"
    (raw,) = r.lrange("queue:default", 0, -1)
    assert json.loads(raw)["args"] == [steps[-1] + 1], "the rest was pushed, once"


class Dies(Job):
    retry = 0
    store_result = True

    def perform(self, fail: bool) -> str:
        if fail:
            raise LookupError("no such row")
        return "ran"


@pytest.mark.parametrize("all_at_once", [False, True])
def test_a_dead_job_retried_by_hand_runs_though_cancelled_while_dead(all_at_once: bool) -> None:
    """cancel() found it dead and removed nothing, but its mark stayed for 30 days: Retry
    now from the dead set queued it, and the worker dropped it unrun as cancelled."""
    from sidequest.api import DeadSet, JobStatus
    from sidequest.worker import cancels

    with running_worker():  # one worker throughout: it heard of the cancel, as it was made
        jid = Dies.perform_async(True)
        wait_for(lambda: DeadSet().find_job(jid) is not None, what="the job to die")
        assert cancel(jid) is False and JobStatus(jid).state == "dead"
        wait_for(lambda: cancels.is_cancelled(jid), what="the worker to hear of the cancel")
        entry = DeadSet().find_job(jid)
        assert entry is not None
        assert (DeadSet().retry_all() == 1) if all_at_once else entry.retry()
        wait_for(lambda: JobStatus(jid).state in ("dead", "cancelled", "succeeded"),
                 what="the retried job's outcome")
    assert JobStatus(jid).state == "dead", "it ran (and failed again), not dropped unrun"
