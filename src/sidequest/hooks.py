"""Process-wide hooks: failures (Sidekiq's ``death_handlers`` and ``error_handlers``) and a
worker process's life (Sidekiq's ``on(:startup)``, ``on(:quiet)`` and ``on(:shutdown)``).

``on_error`` handlers see every exception a job raises (and errors in the job's own hooks);
``on_death`` handlers see every job that will not run again: retries used up, retry off, or
discarded. A handler that raises is logged and skipped; it never changes what happens to the
job, which is already recorded when handlers run.

``on_startup``, ``on_quiet`` and ``on_shutdown`` functions run in each worker process (each
child of ``-P``, an embedded worker too) and never in the processes that only push: to open
what the jobs share (an HTTP client, a pool) and close it. ``async def`` ones run on the
process's event loop for async jobs, so that what they open belongs to it. They are run by
``sidequest.worker.lifecycle``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sidequest.payload import Payload

log = logging.getLogger("sidequest")

#: ``handler(job, exc)``: the job's payload as last recorded, and the exception that ended it.
DeathHandler = Callable[[Payload, BaseException], object]
#: ``handler(exc, context)``: context holds ``"context"`` (what failed), and ``"job"`` and
#: ``"queue"`` when a job was involved.
ErrorHandler = Callable[[BaseException, dict[str, Any]], object]

death_handlers: list[DeathHandler] = []
error_handlers: list[ErrorHandler] = []
#: ``hook()``, or ``async def hook()``: what it returns is ignored.
LifeHook = Callable[[], object]
#: The hooks of each moment of a worker process's life, in the order registered.
life_hooks: dict[str, list[LifeHook]] = {"startup": [], "quiet": [], "shutdown": []}

D = TypeVar("D", bound=DeathHandler)
E = TypeVar("E", bound=ErrorHandler)
L = TypeVar("L", bound=LifeHook)


def on_death(handler: D) -> D:
    """Register ``handler(job, exc)``, called for each job that will not run again.

    Usable as a decorator; returns the handler unchanged.
    """
    death_handlers.append(handler)
    return handler


def on_error(handler: E) -> E:
    """Register ``handler(exc, context)``, called for each exception a job raises.

    Usable as a decorator; returns the handler unchanged.
    """
    error_handlers.append(handler)
    return handler


def on_startup(hook: L) -> L:
    """Register ``hook()`` to run as each worker process starts, before it takes a job (with
    ``-P``, in each child). One that raises stops the worker: it exits 2, saying which.

    Usable as a decorator; returns the hook unchanged.
    """
    return _add("startup", hook)


def on_quiet(hook: L) -> L:
    """Register ``hook()`` to run when the worker process is quieted (``TSTP``, the
    dashboard's Quiet, or the start of a stop): it takes no new job from then on."""
    return _add("quiet", hook)


def on_shutdown(hook: L) -> L:
    """Register ``hook()`` to run as the worker process stops, once its jobs have finished
    or been pushed back: to close what ``on_startup`` opened. One that raises is logged."""
    return _add("shutdown", hook)


def _add(moment: str, hook: L) -> L:
    if not callable(hook):
        raise TypeError(f"on_{moment} takes a function (or an async def function) called"
                        f" with no argument; got {hook!r}")
    if hook not in life_hooks[moment]:  # a module imported twice registers once
        life_hooks[moment].append(hook)
    return hook


def report_error(exc: BaseException, context: dict[str, Any]) -> None:
    """Call every error handler; one that raises is logged and the rest still run."""
    for handler in list(error_handlers):
        try:
            handler(exc, context)
        except Exception:
            log.exception("error handler %r raised; ignoring it", handler)


def report_death(job: Payload, exc: BaseException) -> None:
    """Call every death handler; one that raises is logged, reported and skipped."""
    for handler in list(death_handlers):
        try:
            handler(job, exc)
        except Exception as failure:
            log.exception("death handler %r raised; ignoring it", handler)
            report_error(failure, {"context": "Error calling death handler", "job": job})
