"""Progress reported from an event loop is written by a thread of its own; an async job's
end waits for it, or its "running" could be written after "succeeded"."""

from __future__ import annotations

import asyncio
import threading
import time

from sidequest import status
from sidequest.worker.guards import _and_progress_written


def test_an_async_jobs_end_waits_for_the_progress_it_reported() -> None:
    order: list[str] = []
    writing = threading.Event()

    def slow_write() -> None:  # a progress write that Redis is slow to take
        writing.set()
        time.sleep(0.3)
        order.append("progress written")

    async def job() -> str:
        status.later.submit(slow_write)
        await asyncio.to_thread(writing.wait, 5)
        return "result"

    async def run() -> None:
        assert await _and_progress_written(job) == "result"
        order.append("end recorded")

    asyncio.run(run())
    assert order == ["progress written", "end recorded"]
