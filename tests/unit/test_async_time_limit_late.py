"""An async job's time limit when another job held the event loop past its deadline: the
cancellation comes one loop pass after the deadline's timer, so a job whose wait ended in
time resumes and returns; and once it has returned, nothing cancels what its task does next
(an async middleware after call_next, the worker's own bookkeeping). Both forms: the
``asyncio.timeout`` one (3.11+) and the one of Python 3.10, tested on any version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from sidequest.worker import async_jobs


async def _quick() -> str:
    await asyncio.sleep(0.01)  # its wait ends well within the limit
    return "ok"


def _run_held_up(limited: Callable[[], Awaitable[str]]) -> list[str]:
    """Run ``limited`` in a task, then awaits after it in the same task, while the loop is
    held by a blocking call from before the job's wait ends until past its deadline."""
    said: list[str] = []

    async def task_body() -> None:
        said.append(await limited())
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            said.append("after")
        except asyncio.CancelledError:
            said.append("cancelled after the job returned")

    async def main() -> None:
        task = asyncio.ensure_future(task_body())
        await asyncio.sleep(0)
        time.sleep(0.1)  # another job blocks the loop past the 0.05 s deadline
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    return said


def test_the_310_form_lets_a_job_held_up_by_another_finish_and_go_on() -> None:
    said = _run_held_up(lambda: async_jobs._in_this_task(_quick(), 0.05))
    assert said == ["ok", "after"]


@pytest.mark.skipif(not hasattr(asyncio, "timeout"), reason="asyncio.timeout is 3.11+")
def test_the_timeout_scope_form_lets_a_job_held_up_by_another_finish_and_go_on() -> None:
    said = _run_held_up(async_jobs.timed(_quick, 0.05))
    assert said == ["ok", "after"]
