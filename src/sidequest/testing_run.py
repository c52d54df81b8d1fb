"""How the testing modes run a job: on the payload a worker would read, through their server
middleware as a worker would (an ``async def perform`` job through each middleware's
``acall`` when all have one), its coroutine run to its end here, on a loop of its own when
the caller is async code itself; and the errors their helpers raise (``sidequest.testing``
gives them their public names)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

from sidequest import limiter_held, middleware, registry
from sidequest.errors import SidequestError
from sidequest.payload import KWARGS, Payload, dumps, loads, now

if TYPE_CHECKING:
    from sidequest.job import Job


class EmptyQueueError(SidequestError, RuntimeError):
    """``perform_one`` was asked to run a job, but none of that class is queued."""


class EndlessDrainError(SidequestError, RuntimeError):
    """A drain ran ``MAX_ROUNDS`` rounds and jobs were still enqueueing more jobs."""


class EndlessInlineError(SidequestError, RuntimeError):
    """Inline mode: jobs ran ``MAX_INLINE_DEPTH`` deep, each pushed by the one running."""


def as_fetched(job: Payload) -> Payload:
    """The payload as a worker reads it from its queue: a scheduled job has lost ``at`` and
    gained ``enqueued_at`` (when the scheduler moved it), a queued one keeps its own."""
    fetched: Payload = loads(dumps(job))
    if fetched.pop("at", None) is not None or "enqueued_at" not in fetched:
        fetched["enqueued_at"] = now()
    return fetched


def run_job(chain: middleware.Chain[middleware.ServerMiddleware], job: Payload) -> None:
    """Run ``job`` through ``chain`` as a worker does: an async job whose middlewares all have
    an ``acall`` goes through those, on the job's loop (a worker runs it on its event loop);
    any other job through their ``__call__``, which refuses a middleware with only ``acall``
    (a worker runs such a job on a thread)."""
    cls = registry.lookup(job["class"])
    instance = cls()
    instance.jid = job.get("jid", "")
    instance.payload = job
    args, kwargs = job["args"], job.get(KWARGS) or {}
    around = (instance, job, job["queue"])
    if cls.async_perform and chain.is_async():
        run_coroutine(chain.ainvoke(around, lambda: _awaited(instance, args, kwargs)))
    else:
        chain.invoke(around, lambda: perform(instance, args, kwargs))


async def _awaited(instance: Job, args: Any, kwargs: Any) -> Any:
    # Only for an ``async def perform`` (Job.async_perform): its call is a coroutine.
    return await cast("Awaitable[Any]", instance.perform(*args, **kwargs))


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
