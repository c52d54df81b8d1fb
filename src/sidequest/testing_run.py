"""How the testing modes run a job's ``perform``: a coroutine (``async def perform``) is run to
its end here, on a loop of its own when the caller is async code itself."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sidequest.job import Job


def perform(instance: Job, args: Any, kwargs: Any) -> Any:
    result: Any = instance.perform(*args, **kwargs)  # type: ignore[func-returns-value]
    if inspect.iscoroutine(result):  # async def perform: run it to the end here
        return run_coroutine(result)
    return result


def run_coroutine(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from async code (a test of an async app): run it on a loop of its own.
    # In a copy of this context, so that its own inline pushes count in its depth.
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, asyncio.run, coro).result()
