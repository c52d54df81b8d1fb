"""Runs the application's ``on_startup``, ``on_quiet`` and ``on_shutdown`` hooks
(sidequest.hooks) at those moments of a worker process's life.

A plain function runs in a thread; an ``async def`` one on the process's event loop for
async jobs, since a client it opens (httpx.AsyncClient, an async Redis or database pool) is
bound to the loop it was made on and must be used and closed there. A startup hook that
fails stops the worker, as a bad setting does: the jobs would otherwise run without what it
was to open. A quiet or shutdown hook that fails is logged, and the others still run.

The quiet and shutdown hooks share ``BUDGET`` seconds at a stop, which the stop's hard
deadline (the watchdog's) grants on top of the jobs' timeout: past it the process stops
without waiting for them, rather than be killed before it has cleared its record.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import math
import threading
import time
from typing import Any

from sidequest.errors import ConfigError
from sidequest.hooks import LifeHook, life_hooks
from sidequest.worker.asyncio_runner import AsyncRunner

log = logging.getLogger("sidequest")

#: Seconds the quiet and shutdown hooks may take in all, at a stop.
BUDGET = 10.0
#: Seconds of the budget kept, at a stop, for pushing back the jobs still running after
#: the hooks (the hard deadline allows 1.5 more).
PUSH_BACK_RESERVE = 1.0
#: How often a startup hook's wait looks for a stop.
STEP = 0.1


class StartupHookError(ConfigError):
    """An on_startup hook raised: the worker does not start."""


class StoppedWhileStarting(Exception):
    """A stop came while the on_startup hooks ran: the worker starts nothing."""


def stop_budget() -> float:
    """Seconds a stop grants the hooks beyond the jobs' timeout: none without any hook (a
    startup hook counts: it may register the shutdown hook that closes what it opened)."""
    return BUDGET if any(life_hooks.values()) else 0.0


class LifeEvents:
    """A worker process's hooks, each moment told once: quiet at the first TSTP or at the
    stop, on a thread of its own (neither the signal handler nor the heartbeat waits for the
    application's code), shutdown after it, once the jobs are done."""

    def __init__(self, runner: AsyncRunner) -> None:
        self.runner = runner
        # Taken without blocking: quiet() may run in a signal handler that interrupted the
        # main thread inside shutdown(); whoever holds it is telling the quiet hooks anyway.
        self._gate = threading.Lock()
        self._quiet: threading.Thread | None = None
        self._told_quiet = False
        self._shut = False
        #: The startup hooks have run: a quiet asked earlier (a TSTP while the app loaded)
        #: waits for them, so that a quiet hook finds what they opened.
        self._started = False
        self._quiet_asked = False
        #: When the hooks must be done by (monotonic), set as a stop begins: the stop's
        #: jobs' deadline plus BUDGET, so that a stop that ran long (a job at its deadline,
        #: the threads' grace, the writes) cannot carry the hooks past the hard deadline.
        self.end_by = math.inf

    def stop_begins(self, jobs_deadline: float) -> None:
        # Less a reserve: the jobs still running go back after the hooks, and must be back
        # before the hard deadline, or each is recovered as a death of its process instead.
        self.end_by = jobs_deadline + BUDGET - PUSH_BACK_RESERVE

    def startup(self, stop: threading.Event | None = None) -> None:
        """Every startup hook, in order; the first that raises stops the worker, and a
        ``stop`` set meanwhile ends the wait for an async one (StoppedWhileStarting)."""
        for hook in list(life_hooks["startup"]):
            try:
                self._call(hook, None, stop)
            except StoppedWhileStarting:
                raise
            except Exception as exc:
                log.exception("on_startup hook %s raised", name_of(hook))
                raise StartupHookError(
                    f"the on_startup hook {name_of(hook)} raised {type(exc).__name__}: {exc};"
                    f" the worker did not start (its traceback is logged above): fix it, or"
                    f" catch in the hook what may fail there") from exc
            if stop is not None and stop.is_set():
                raise StoppedWhileStarting
        self._started = True
        if self._quiet_asked:
            self.quiet()

    def quiet(self) -> None:
        if not self._started:
            self._quiet_asked = True
            return
        if not self._gate.acquire(blocking=False):
            return
        try:
            if self._told_quiet:
                return
            self._told_quiet = True
            if life_hooks["quiet"]:
                self._quiet = threading.Thread(target=self._each, args=("quiet",),
                                               name="sidequest-on-quiet", daemon=True)
                self._quiet.start()
        finally:
            self._gate.release()

    def shutdown(self) -> None:
        """The quiet hooks if not told yet, then the shutdown hooks, within BUDGET."""
        self._started = True  # a stop after a failed start still closes what was opened
        self.quiet()
        if self._shut:  # the stop paths are serialized by the launcher's own lock
            return
        self._shut = True
        if not life_hooks["shutdown"] and self._quiet is None:
            return
        deadline = min(time.monotonic() + BUDGET, self.end_by)
        runner = threading.Thread(target=self._after_quiet, args=(deadline,),
                                  name="sidequest-on-shutdown", daemon=True)
        runner.start()
        # A moment past the deadline: an async hook is cut off there by the runner itself,
        # which says which; only a plain one that hangs is left behind.
        runner.join(max(0.0, deadline - time.monotonic()) + 5 * STEP)
        if runner.is_alive():
            log.error("the on_quiet and on_shutdown hooks did not finish within %g s; the"
                      " worker stops without waiting for them", BUDGET)

    def _after_quiet(self, deadline: float) -> None:
        told = self._quiet
        if told is not None:  # a shutdown hook may close what a quiet one still uses
            # Half the budget at most: a quiet hook that hangs must not leave the shutdown
            # hooks no time at all.
            told.join(max(0.0, deadline - BUDGET / 2 - time.monotonic()))
            if told.is_alive():
                log.error("the on_quiet hooks have not finished; the on_shutdown hooks run"
                          " beside them")
        self._each("shutdown", deadline)

    def _each(self, moment: str, deadline: float | None = None) -> None:
        for hook in list(life_hooks[moment]):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                log.error("on_%s hook %s skipped: the hooks' %g s were spent", moment,
                          name_of(hook), BUDGET)
                continue
            try:
                self._call(hook, left, None)
            except _TooLong:
                log.error("on_%s hook %s did not finish in time; going on without it",
                          moment, name_of(hook))
            except Exception:
                log.exception("on_%s hook %s raised; the other hooks still run", moment,
                              name_of(hook))

    def _call(self, hook: LifeHook, limit: float | None, stop: threading.Event | None) -> None:
        result = hook()
        if not inspect.isawaitable(result):
            return
        if self.runner.busy and self.runner.stuck:  # a job blocks the loop: no turn for it
            _close(result)
            raise RuntimeError("the event loop of async jobs is blocked by a job, so this"
                               " async hook could not run")
        future = self.runner.submit_coroutine(_awaited(result))
        deadline = None if limit is None else time.monotonic() + limit
        while not future.done():
            if stop is not None and stop.is_set():
                future.cancel()
                raise StoppedWhileStarting
            if deadline is not None and time.monotonic() >= deadline:
                future.cancel()
                raise _TooLong
            # Waited in steps: a stop is seen, and the hook's own TimeoutError is its own.
            concurrent.futures.wait([future], timeout=STEP)
        future.result()


class _TooLong(Exception):
    """An async hook ran past its share of the budget (not a TimeoutError it raised)."""


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
