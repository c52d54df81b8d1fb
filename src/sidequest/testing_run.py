"""How the testing modes run a job's ``perform`` (a coroutine, ``async def perform``, is run to
its end here, on a loop of its own when the caller is async code itself), and the errors
their helpers raise (``sidequest.testing`` gives them their public names)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from typing import TYPE_CHECKING, Any

from sidequest import limiter_held
from sidequest.errors import SidequestError

if TYPE_CHECKING:
    from sidequest.job import Job


class EmptyQueueError(SidequestError, RuntimeError):
    """``perform_one`` was asked to run a job, but none of that class is queued."""


class EndlessDrainError(SidequestError, RuntimeError):
    """A drain ran ``MAX_ROUNDS`` rounds and jobs were still enqueueing more jobs."""


class EndlessInlineError(SidequestError, RuntimeError):
    """Inline mode: jobs ran ``MAX_INLINE_DEPTH`` deep, each pushed by the one running."""



def perform(instance: Job, args: Any, kwargs: Any) -> Any:
    result: Any = instance.perform(*args, **kwargs)  # type: ignore[func-returns-value]
    if inspect.iscoroutine(result):  # async def perform: run it to the end here
        return run_coroutine(result)
    return result


def run_coroutine(coro: Any) -> Any:
    # Marked as a job's loop: a plain `with` on a limiter there is refused, as on a worker's.
    token = limiter_held.job_loop.set(True)
    try:
        return _run_to_end(coro)
    finally:
        limiter_held.job_loop.reset(token)


def _run_to_end(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from async code (a test of an async app): run it on a loop of its own.
    # In a copy of this context, so that its own inline pushes count in its depth.
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, asyncio.run, coro).result()
