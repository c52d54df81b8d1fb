"""Around an ``async def perform`` job, the timing middleware (the dashboard's metrics and the
process's exporter both count through it) counts a run cancelled by ``sidequest.api.cancel``
as a run, not a failure, and one cancelled by a stop not at all; a job's time limit keeps the
traceback of where the job was waiting."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from sidequest.errors import JobTimeout
from sidequest.metrics import Timing
from sidequest.worker.async_jobs import timed


class Seen(Timing):
    """Keeps each observed run's ``failed``."""

    def __init__(self) -> None:
        self.runs: list[bool] = []

    def observe(self, payload: dict[str, Any], queue: str, seconds: float,
                failed: bool) -> None:
        self.runs.append(failed)


class Asked:
    """A job as the middleware sees it: it answers ``cancelled()``."""

    def __init__(self, cancelled: bool) -> None:
        self._cancelled = cancelled

    def cancelled(self) -> bool:
        return self._cancelled


async def is_cancelled() -> None:
    raise asyncio.CancelledError


async def raises() -> None:
    raise LookupError("no such row")


def observed(job: Any, call_next: Callable[[], Awaitable[Any]]) -> list[bool]:
    seen = Seen()

    async def run() -> None:
        with contextlib.suppress(asyncio.CancelledError, LookupError):
            await seen.acall(job, {"class": "Lingers"}, "default", call_next)

    asyncio.run(run())
    return seen.runs


def test_a_run_cancelled_by_the_api_is_a_run_not_a_failure() -> None:
    assert observed(Asked(cancelled=True), is_cancelled) == [False]


def test_a_run_cancelled_by_a_stop_is_not_counted() -> None:
    assert observed(Asked(cancelled=False), is_cancelled) == []


def test_an_error_is_still_a_failure() -> None:
    assert observed(Asked(cancelled=True), raises) == [True]


async def waits() -> None:
    await asyncio.sleep(30)


def test_a_time_limit_keeps_the_frame_where_the_job_waited() -> None:
    async def run() -> list[traceback.FrameSummary]:
        try:
            await timed(waits, 0.01)()
        except JobTimeout as exc:
            return traceback.extract_tb(exc.__traceback__)
        raise AssertionError("no JobTimeout")

    frames = asyncio.run(run())
    _, first = inspect.getsourcelines(waits)
    assert (__file__, first + 1, "waits") in [(f.filename, f.lineno, f.name) for f in frames]
