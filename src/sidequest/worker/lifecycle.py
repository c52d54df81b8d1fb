"""Runs the application's ``on_startup``, ``on_quiet`` and ``on_shutdown`` hooks
(sidequest.hooks) at those moments of a worker process's life.

A plain function runs in the thread that reaches the moment; an ``async def`` one on the
process's event loop for async jobs, since a client it opens (httpx.AsyncClient, an async
Redis or database pool) is bound to the loop it was made on and must be used and closed
there. A startup hook that fails stops the worker, as a bad setting does: the jobs would
otherwise run without what it was to open. A quiet or shutdown hook that fails is logged,
and the others still run.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import threading
from typing import Any

from sidequest.errors import ConfigError
from sidequest.hooks import LifeHook, life_hooks
from sidequest.worker.asyncio_runner import AsyncRunner

log = logging.getLogger("sidequest")

#: Seconds an async quiet or shutdown hook may take: a stop has a deadline to keep.
ASYNC_LIMIT = 10.0


class LifeEvents:
    """A worker process's hooks, each moment told once: quiet at the first TSTP or at the
    stop, on a thread of its own (neither the heartbeat nor the signal thread waits for
    the application's code), shutdown after it, once the jobs are done."""

    def __init__(self, runner: AsyncRunner) -> None:
        self.runner = runner
        self._lock = threading.Lock()
        self._quiet: threading.Thread | None = None
        self._shut = False

    def startup(self) -> None:
        """Every startup hook, in order; the first that raises stops the worker."""
        for hook in list(life_hooks["startup"]):
            try:
                self._call(hook, None)
            except Exception as exc:
                log.exception("on_startup hook %s raised", name_of(hook))
                raise ConfigError(
                    f"the on_startup hook {name_of(hook)} raised {type(exc).__name__}: {exc};"
                    f" the worker did not start (its traceback is logged above): fix it, or"
                    f" catch in the hook what may fail there") from exc

    def quiet(self) -> None:
        with self._lock:
            if self._quiet is not None or not life_hooks["quiet"]:
                return
            self._quiet = threading.Thread(target=self._each, args=("quiet",),
                                           name="sidequest-on-quiet", daemon=True)
            self._quiet.start()

    def shutdown(self) -> None:
        self.quiet()  # a stop quiets the process first: its hooks are told so too
        with self._lock:
            if self._shut:
                return
            self._shut = True
            told = self._quiet
        if told is not None:
            told.join(ASYNC_LIMIT)
        self._each("shutdown")

    def _each(self, moment: str) -> None:
        for hook in list(life_hooks[moment]):
            try:
                self._call(hook, ASYNC_LIMIT)
            except concurrent.futures.TimeoutError:
                log.error("on_%s hook %s did not finish within %g s; going on without it",
                          moment, name_of(hook), ASYNC_LIMIT)
            except Exception:
                log.exception("on_%s hook %s raised; the other hooks still run", moment,
                              name_of(hook))

    def _call(self, hook: LifeHook, limit: float | None) -> None:
        result = hook()
        if not inspect.isawaitable(result):
            return
        if self.runner.stuck:  # a job blocks the loop: the hook would never get its turn
            _close(result)
            raise RuntimeError("the event loop of async jobs is blocked by a job, so this"
                               " async hook could not run")
        self.runner.wait_result(_awaited(result), limit)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _close(awaitable: Any) -> None:
    """Close a coroutine that will not run (else Python warns it was never awaited)."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()


def name_of(hook: LifeHook) -> str:
    module = getattr(hook, "__module__", None)
    name = getattr(hook, "__qualname__", None) or repr(hook)
    return f"{module}.{name}" if module else str(name)
