"""Process-wide failure hooks, Sidekiq's ``death_handlers`` and ``error_handlers``.

``on_error`` handlers see every exception a job raises (and errors in the job's own hooks);
``on_death`` handlers see every job that will not run again: retries used up, retry off, or
discarded. A handler that raises is logged and skipped; it never changes what happens to the
job, which is already recorded when handlers run.
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

D = TypeVar("D", bound=DeathHandler)
E = TypeVar("E", bound=ErrorHandler)


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
