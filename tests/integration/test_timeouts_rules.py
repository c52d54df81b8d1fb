"""Time limits and cancellation under the usual rules: a timeout given at the push
(``.set(timeout=...)``) applies to that push only, a timed-out job with no retries left goes
to the dead set, a job waiting in the retry set never runs again once cancelled, and an async
job sees its cancellation within a second. Real Redis, in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
import traceback
import weakref
from typing import Any

import pytest

from helpers import running_worker, wait_for
from sidequest import Job, JobTimeout, middleware
from sidequest.api import DeadSet, RetrySet, cancel

runs: list[str] = []
started = threading.Event()
cancelled_at: list[float] = []


class Slow(Job):
    retry = 1

    def perform(self, seconds: float) -> None:
        runs.append(self.jid)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # Python steps: a JobTimeout can land
            pass


class NoRetries(Job):
    retry = 0
    timeout = 0.5

    async def perform(self) -> None:
        await asyncio.sleep(30)


class Fails(Job):
    retry = 5

    def perform(self) -> None:
        runs.append(self.jid)
        raise RuntimeError("upstream down")


class Waits(Job):
    async def perform(self) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled_at.append(time.time())
            raise


class OwnTimeout(Job):
    retry = 0
    timeout = 30

    async def perform(self) -> None:
        raise TimeoutError("the payment API did not answer")  # the job's own, not ours


class Swallows(Job):
    """Catches every Exception, its JobTimeout included, and returns."""

    retry = 0
    timeout = 0.5

    def perform(self) -> str:
        with contextlib.suppress(Exception):  # as `except Exception: pass` would
            _spin(2.0)
        runs.append(self.jid)
        return "went on"


class CleansUp(Job):
    """The README's advice for Python 3.13: the cleanup around a call to the loop."""

    retry = 0
    timeout = 0.5

    def perform(self) -> None:
        try:
            _spin(5.0)
        finally:
            runs.append(self.jid)


def _spin(seconds: float) -> None:
    """Python steps for ``seconds``, in a function of its own: CPython 3.13 skips the handlers
    of the very function whose loop an exception raised from another thread lands in (the
    README's time limits say so), and Swallows's `except` must run to test what it tests."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


class SwallowsAsync(Job):
    """Catches its cancellation at the time limit and returns."""

    retry = 0
    timeout = 0.5

    async def perform(self) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            runs.append(self.jid)
        return "survived"


class BlocksTheLoop(Job):
    """Holds the event loop past its time limit (a blocking call), then returns: the
    limit's timer never got to run."""

    retry = 0
    timeout = 0.5

    async def perform(self) -> str:
        time.sleep(1.0)
        runs.append(self.jid)
        return "done, late"


class Waits2(Job):
    """Limited to 0.5 s; waits for Blocker to let it go. Blocker then holds the loop for
    a second in the same step: this job resumes after its own limit, having done nothing
    wrong."""

    retry = 0
    timeout = 0.5

    async def perform(self) -> str:
        handoff["waiting"].set()
        await handoff["go"].wait()
        runs.append(self.jid)
        return "ok"


class Blocker(Job):
    retry = 0

    async def perform(self) -> None:
        await handoff["waiting"].wait()
        handoff["go"].set()  # the other job's wake-up is queued behind this step...
        time.sleep(1.0)  # ...which holds the loop past that job's limit


class SleepsBriefly(Job):
    """Limited to 0.5 s; sleeps 0.2 s, during which BlocksLater holds the loop for a second:
    its sleep ended in time, it only resumed late."""

    retry = 0
    timeout = 0.5

    async def perform(self) -> str:
        handoff["waiting"].set()
        await asyncio.sleep(0.2)
        runs.append(self.jid)
        return "ok"


class BlocksLater(Job):
    retry = 0

    async def perform(self) -> None:
        await handoff["waiting"].wait()
        await asyncio.sleep(0.05)
        time.sleep(1.0)  # the other job's timer and its limit's fall due in one loop pass


handoff: dict[str, asyncio.Event] = {}


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    runs.clear()
    started.clear()
    cancelled_at.clear()


def test_a_timeout_set_at_the_push_applies_to_that_push_only() -> None:
    limited = Slow.set(timeout=0.5).perform_async(3.0)
    free = Slow.perform_async(1.0)
    with running_worker(concurrency=2):
        (entry,) = wait_for(lambda: list(RetrySet()), what="the limited job's failure")
        wait_for(lambda: len(runs) == 2, what="both jobs to run")
    assert entry.jid == limited and entry.item["error_class"].endswith("JobTimeout")
    # The limit is named, for a thread job as for an async one (below).
    assert entry.item["error_message"] == "the job ran past its timeout of 0.5 s"
    assert free in runs and RetrySet().size == 1, "the job without a limit ran to its end"


def test_a_timed_out_job_without_retries_is_dead() -> None:
    jid = NoRetries.perform_async()
    with running_worker():
        (entry,) = wait_for(lambda: list(DeadSet()), what="the job in the dead set")
    assert entry.jid == jid and entry.item["error_class"].endswith("JobTimeout")
    assert entry.item["error_message"] == "the job ran past its timeout of 0.5 s"
    assert RetrySet().size == 0


def test_a_cancelled_retry_never_runs_again() -> None:
    jid = Fails.perform_async()
    assert jid
    with running_worker():
        wait_for(lambda: RetrySet().size == 1, what="the first failure")
        assert cancel(jid) is True
    assert RetrySet().size == 0 and runs == [jid]


def test_an_async_job_gets_its_cancellation_within_a_second() -> None:
    jid = Waits.perform_async()
    assert jid
    with running_worker():
        assert started.wait(10), "the job did not start"
        asked = time.time()
        cancel(jid)
        wait_for(lambda: cancelled_at, what="the CancelledError")
    assert cancelled_at[0] - asked < 1.5  # the watcher looks every 0.5 s; slack for load
    assert RetrySet().size == 0 and DeadSet().size == 0, "a cancellation is not a failure"


def test_an_async_jobs_own_timeout_error_is_not_taken_for_its_time_limit() -> None:
    OwnTimeout.perform_async()
    with running_worker():
        wait_for(lambda: DeadSet().size == 1, what="the job to fail")
    (entry,) = list(DeadSet())
    assert entry.item["error_class"] == "TimeoutError", entry.item
    assert entry.item["error_message"] == "the payment API did not answer"


def test_a_thread_job_that_catches_its_timeout_and_returns_still_fails() -> None:
    """...to the middleware too (metrics, traces): the failure was raised only once the
    middleware had seen a success, and its traceback named Sidequest's lines, not where the
    job was when its time ran out."""
    outcomes: list[BaseException | None] = []

    def record(job: Any, payload: Any, queue: str, call_next: Any) -> Any:
        try:
            result = call_next()
        except BaseException as exc:
            outcomes.append(exc)
            raise
        outcomes.append(None)
        return result

    jid = Swallows.perform_async()
    middleware.server.add(record)
    try:
        with running_worker():
            (entry,) = wait_for(lambda: list(DeadSet()), what="the job in the dead set")
    finally:
        middleware.server.remove(record)
    assert runs == [jid], "it ran on after catching the JobTimeout"
    assert entry.jid == jid and entry.item["error_class"].endswith("JobTimeout")
    assert entry.item["error_message"] == "the job ran past its timeout of 0.5 s"
    [seen] = outcomes
    assert isinstance(seen, JobTimeout), "the middleware saw a success"
    assert str(seen) == "the job ran past its timeout of 0.5 s"
    frames = traceback.extract_tb(seen.__traceback__)
    assert frames[-1].name == "_spin" and frames[-1].filename == __file__, frames[-1]
    # Only the job's frames below the worker's: the outer ones run other jobs by now.
    assert not [f for f in frames if f.filename.endswith("threading.py")], frames


class SwallowsBig(Job):
    retry = 0
    timeout = 0.5

    def perform(self) -> None:
        big = Marker()
        held.append(weakref.ref(big))
        with contextlib.suppress(Exception):
            _spin(2.0)


class Marker:
    pass


held: list[weakref.ref[Marker]] = []


def test_a_caught_timeout_keeps_no_frame_of_the_job_alive() -> None:
    """The stack kept for the failure held the job's frames, and their locals, until another
    timed job came along: a job's 50 MB stayed in the process."""
    held.clear()
    SwallowsBig.perform_async()
    with running_worker():
        wait_for(lambda: list(DeadSet()), what="the job in the dead set")

        def freed() -> bool:
            gc.collect()
            return held[0]() is None

        wait_for(freed, timeout=5, what="the job's locals to be freed")


def test_the_cleanup_around_a_call_that_ran_out_of_time_runs() -> None:
    """...and the middleware sees the limit in the message, as the log and the retry set do
    (a trace's status said only "the job ran past its timeout")."""
    seen: list[str] = []

    def record(job: Any, payload: Any, queue: str, call_next: Any) -> Any:
        try:
            return call_next()
        except JobTimeout as exc:
            seen.append(str(exc))
            raise

    jid = CleansUp.perform_async()
    middleware.server.add(record)
    try:
        with running_worker():
            (entry,) = wait_for(lambda: list(DeadSet()), what="the job in the dead set")
    finally:
        middleware.server.remove(record)
    assert runs == [jid], "its finally block did not run"
    assert entry.jid == jid and entry.item["error_class"].endswith("JobTimeout")
    assert seen == ["the job ran past its timeout of 0.5 s"]


def test_an_async_job_that_catches_its_cancellation_and_returns_still_fails() -> None:
    jid = SwallowsAsync.perform_async()
    with running_worker():
        (entry,) = wait_for(lambda: list(DeadSet()), what="the job in the dead set")
    assert runs == [jid]
    assert entry.jid == jid and entry.item["error_class"].endswith("JobTimeout")
    assert entry.item["error_message"] == "the job ran past its timeout of 0.5 s"


def test_an_async_job_that_blocks_the_loop_past_its_limit_still_fails() -> None:
    jid = BlocksTheLoop.perform_async()
    with running_worker():
        (entry,) = wait_for(lambda: list(DeadSet()), what="the job in the dead set")
    assert runs == [jid]
    assert entry.jid == jid and entry.item["error_class"].endswith("JobTimeout")
    assert entry.item["error_message"] == "the job ran past its timeout of 0.5 s"


def test_an_async_job_held_up_by_another_jobs_blocking_call_is_not_failed() -> None:
    handoff.update(waiting=asyncio.Event(), go=asyncio.Event())
    waits = Waits2.perform_async()
    Blocker.perform_async()
    with running_worker(concurrency=4):
        wait_for(lambda: runs == [waits], what="the waiting job to end")
    assert DeadSet().size == 0 and RetrySet().size == 0, list(DeadSet())


def test_an_async_job_whose_sleep_ended_while_the_loop_was_held_is_not_failed() -> None:
    handoff.update(waiting=asyncio.Event(), go=asyncio.Event())
    sleeps = SleepsBriefly.perform_async()
    BlocksLater.perform_async()
    with running_worker(concurrency=4):
        wait_for(lambda: runs == [sleeps] or DeadSet().size, what="the sleeping job to end")
    assert runs == [sleeps], list(DeadSet())
    assert DeadSet().size == 0 and RetrySet().size == 0, list(DeadSet())
