"""The event loop that runs async jobs (worker/asyncio_runner.py): what it counts as running."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

import pytest

from sidequest.worker import asyncio_runner
from sidequest.worker.asyncio_runner import AsyncRunner


def test_a_job_that_ends_before_submit_returns_is_not_left_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The submitting thread may lose the interpreter right after the hand-off and get it
    # back only once the job has ended; that job must not stay counted as running (a stop
    # would wait its whole deadline for it).
    schedule = asyncio.run_coroutine_threadsafe

    def schedule_then_stall(coro: Coroutine[Any, Any, Any],
                            loop: asyncio.AbstractEventLoop) -> Future[Any]:
        future = schedule(coro, loop)
        future.result(timeout=10)  # the job is over before the submitter runs on
        return future

    monkeypatch.setattr(asyncio_runner.asyncio, "run_coroutine_threadsafe",
                        schedule_then_stall)
    runner = AsyncRunner(limit=2)
    outcomes: list[BaseException | None] = []

    async def work() -> None:
        await asyncio.sleep(0)

    async def done(error: BaseException | None) -> None:
        outcomes.append(error)

    try:
        for i in range(3):  # more than the limit: each ended job gave its slot back
            runner.submit(f"jid-{i}", "Quick", work, done)
        assert outcomes == [None, None, None]
        assert runner.busy == 0 and runner.running() == []
    finally:
        runner.close()


def test_a_running_job_is_counted_until_it_ends_and_can_be_cancelled() -> None:
    runner = AsyncRunner(limit=5)
    release = threading.Event()
    started = threading.Event()
    outcomes: list[BaseException | None] = []
    ended = threading.Event()

    async def work() -> None:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)

    async def done(error: BaseException | None) -> None:
        outcomes.append(error)
        ended.set()

    try:
        runner.submit("a", "Slow", work, done)
        assert started.wait(10)
        assert runner.busy == 1 and runner.running() == ["a"]
        runner.cancel(["a"])
        assert ended.wait(10)
        assert len(outcomes) == 1 and isinstance(outcomes[0], asyncio.CancelledError)
        assert runner.busy == 0
    finally:
        release.set()
        runner.close()


def test_a_job_that_blocks_the_loop_and_ends_is_named_in_the_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    # The job blocks the loop, then ends in the same step (its done() does not yield): by the
    # time the watchdog wakes the job is gone from the running list, yet it is the culprit.
    caplog.set_level(logging.WARNING, logger="sidequest")
    runner = AsyncRunner(limit=2)
    ended = threading.Event()

    async def work() -> None:
        time.sleep(0.4)  # a sync call inside async def

    async def done(error: BaseException | None) -> None:
        ended.set()

    try:
        runner.submit("a", "BlocksTheLoop", work, done)
        assert ended.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not blocked_warnings(caplog):
            time.sleep(0.01)
        assert any("BlocksTheLoop" in message for message in blocked_warnings(caplog)), \
            blocked_warnings(caplog)
    finally:
        runner.close()


def blocked_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "was blocked" in r.getMessage()]


def test_a_closed_runner_leaves_no_pending_task_behind(caplog: pytest.LogCaptureFixture) -> None:
    # The loop's watchdog task was left pending when the loop stopped, and reported as
    # destroyed while pending when the loop was collected (at the worker's exit).
    runner = AsyncRunner(limit=1)
    loop = runner.loop
    runner.close()
    assert runner._thread is not None and not runner._thread.is_alive()
    assert not [task for task in asyncio.all_tasks(loop) if not task.done()]


def test_a_late_loop_with_no_job_running_is_not_blamed_on_a_job(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sidequest"):
        asyncio_runner._blocked(0.128, [])
        asyncio_runner._blocked(0.5, ["app.jobs.Fetch"])
    quiet, busy = (record.getMessage() for record in caplog.records)
    assert "128 ms with no async job running: the host was busy" in quiet
    assert "async def perform" not in quiet
    assert "running then: app.jobs.Fetch (a blocking call inside async def perform" in busy


class _Suspend:
    """Yields once, as an await on a pending future does, without needing a loop."""

    def __await__(self) -> Any:
        yield


def test_a_job_closed_with_no_loop_running_records_nothing() -> None:
    # The garbage collector closes a job the stop left unfinished (its loop has stopped).
    # A job whose cleanup raises then (an await in a finally) must not lead to its outcome
    # being recorded: with no loop, that raised "no running event loop" out of close().
    runner = AsyncRunner(limit=1)
    runner._room.acquire()  # as submit() does before the loop gets the job
    entry = asyncio_runner._Entry("Careless", "x")
    runner._running["jid-1"] = entry
    recorded: list[BaseException | None] = []

    async def work() -> None:
        try:
            await _Suspend()
        finally:
            raise RuntimeError("cleanup that needs the loop")

    async def done(error: BaseException | None) -> None:
        asyncio.get_running_loop()  # as recording an outcome does
        recorded.append(error)

    guard = runner._guard("jid-1", entry, work, done)
    guard.send(None)  # the job starts and waits
    guard.close()  # raised RuntimeError('no running event loop') before
    assert recorded == [] and runner.running() == [], (recorded, runner.running())
    assert runner._room.acquire(blocking=False), "its room on the loop was not given back"


def test_a_run_that_ends_leaves_a_later_run_of_its_id_listed() -> None:
    """The first run's outcome is written after it leaves its job's table; a run of the same
    id listed meanwhile was then dropped from the runner by the first one's end: a cancel
    or a stop no longer reached it."""
    runner = AsyncRunner(limit=2)
    first_done, release, second_started = threading.Event(), threading.Event(), threading.Event()

    async def quick() -> None:
        await asyncio.sleep(0)

    async def slow_outcome(error: BaseException | None) -> None:
        first_done.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)

    async def long() -> None:
        second_started.set()
        await asyncio.sleep(30)

    async def nothing(error: BaseException | None) -> None:
        pass

    try:
        assert runner.submit("abc", "First", quick, slow_outcome)
        assert first_done.wait(10)
        assert runner.submit("abc", "Second", long, nothing)
        assert second_started.wait(10)
        release.set()  # the first run's end now completes, and forgets its own entry only
        deadline = time.monotonic() + 5
        while runner._room._value < 1 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        assert runner.started() == ["abc"] and runner.listed("abc")
    finally:
        runner.cancel(["abc"])
        runner.close()
