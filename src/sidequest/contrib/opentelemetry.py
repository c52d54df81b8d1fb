"""OpenTelemetry tracing for jobs: a producer span on each push, a consumer span on each run.

    pip install 'sidequest[otel]'

    from sidequest.contrib import opentelemetry
    opentelemetry.instrument()      # in the app that pushes and in the worker's -r module

The push injects the current trace context into the payload as top-level W3C keys
(``traceparent``, and ``tracestate`` when there is one), as Ruby's OpenTelemetry Sidekiq
instrumentation does, so a trace crosses between Ruby and Python processes in both
directions. The run continues that trace: a job's consumer span is a child of the producer
span of the push, itself a child of whatever was current then (the web request). Span names
and attributes follow the messaging semantic conventions with ``messaging.system =
"sidekiq"``, again as the Ruby instrumentation writes them, so dashboards built for one
read the other.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "sidequest.contrib.opentelemetry needs the OpenTelemetry API: "
        "pip install 'sidequest[otel]'"
    ) from exc

from sidequest import __version__, middleware
from sidequest.limiter import OverLimit
from sidequest.payload import Payload

SYSTEM = "sidekiq"  # the value Ruby's instrumentation writes; one system, two languages
#: Span attributes of a run that a full rate limiter sent back (OverLimit).
OVERLIMIT = "sidequest.overlimit"
LIMITER = "sidequest.limiter.name"
#: How long a stuck job's span may take to be exported before its process retires.
FLUSH_MS = 2000


def _tracer() -> trace.Tracer:
    # Looked up at each use: the application may install its provider after instrument().
    return trace.get_tracer("sidequest", __version__)


def _attributes(payload: Payload, queue: str, operation: str) -> dict[str, Any]:
    klass = payload.get("wrapped") or payload.get("class")
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation": operation,
        "messaging.destination.name": queue,
        "messaging.sidekiq.job_class": str(klass),
    }
    if isinstance(payload.get("jid"), str):
        attributes["messaging.message.id"] = payload["jid"]
    return attributes


def client_middleware(payload: Payload, queue: str, call_next: Callable[[], Any]) -> Any:
    """A PRODUCER span around the push; the trace context goes into the payload."""
    with _tracer().start_as_current_span(
        f"{queue} publish", kind=SpanKind.PRODUCER,
        attributes=_attributes(payload, queue, "publish"),
    ):
        propagate.inject(payload)
        return call_next()


class ServerMiddleware:
    """A CONSUMER span around the run, continuing the trace the payload carries (if any).
    An exception is recorded on the span and marks it as an error, then passes on; an
    OverLimit (a full rate limiter: the worker reschedules the job, not a failure) only
    marks the span with ``sidequest.overlimit`` and the limiter's name. The ``acall`` form
    does the same around an ``async def perform`` job, which then runs on the event loop
    rather than holding a worker thread for its whole run."""

    def __init__(self) -> None:
        #: jid -> the spans of its runs in progress, oldest first, for ``given_up`` (runs
        #: may share a jid: set by hand, or none at all).
        self._live: dict[str, list[trace.Span]] = {}
        self._lock = threading.Lock()

    def __call__(self, job: Any, payload: Payload, queue: str,
                 call_next: Callable[[], Any]) -> Any:
        with self._run_span(payload, queue):
            return call_next()

    async def acall(self, job: Any, payload: Payload, queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        # The span is current in this task's context, which the job's coroutine runs in:
        # its own spans (an HTTP call's) are children of this one.
        with self._run_span(payload, queue):
            return await call_next()

    @contextmanager
    def _run_span(self, payload: Payload, queue: str) -> Iterator[trace.Span]:
        """The run's span, ended when the run ends unless ``given_up`` ended it first."""
        jid = str(payload.get("jid"))
        with _consumer_span(payload, queue) as span:
            with self._lock:
                self._live.setdefault(jid, []).append(span)
            try:
                with _outcome(span):
                    yield span
            finally:
                if self._take(jid, span) is not None:
                    span.end()

    def _take(self, jid: str, span: trace.Span | None = None) -> trace.Span | None:
        """Take ``span`` (or, with None, the oldest span) of ``jid``'s runs off the live
        ones; None when it is not there (``given_up`` took it, and ended it)."""
        with self._lock:
            spans = self._live.get(jid, [])
            found = next((i for i, live in enumerate(spans) if span is None or live is span),
                         None)
            taken = spans.pop(found) if found is not None else None
            if not spans:
                self._live.pop(jid, None)
        return taken

    def given_up(self, payload: Payload, queue: str, error: BaseException) -> None:
        """The run is stuck past its time limit (sidequest.metrics.given_up): its span ends
        now, as a failure, and is exported before the process retires. Left open, it never
        ended, and the trace of the very job an operator looks for had no run in it."""
        span = self._take(str(payload.get("jid")))  # runs sharing a jid: the oldest is stuck
        if span is None:
            return
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
        flush = getattr(trace.get_tracer_provider(), "force_flush", None)
        if callable(flush):  # the SDK's provider: the process exits soon, spans unsent
            flush(FLUSH_MS)


def _consumer_span(payload: Payload, queue: str) -> AbstractContextManager[trace.Span]:
    parent = propagate.extract(payload)
    attributes = _attributes(payload, queue, "process")
    if isinstance(payload.get("retry_count"), int):
        attributes["messaging.sidekiq.retry_count"] = payload["retry_count"]
    # The SDK's own handling would make an OverLimit an error: _outcome says what a raise is.
    return _tracer().start_as_current_span(
        f"{queue} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
        record_exception=False, set_status_on_exception=False, end_on_exit=False,
    )


@contextmanager
def _outcome(span: trace.Span) -> Iterator[None]:
    """What a raise out of the run says on its span. An OverLimit passes through this
    middleware to the worker's guard outside it, which reschedules the job without a retry
    and counts it as over limit: its span stays unset, as the metrics count no failure.
    Any other Exception is recorded and sets the status to ERROR, as the SDK would have;
    a BaseException (an async job's CancelledError) is not an error, as in the SDK."""
    try:
        yield
    except OverLimit as exc:
        span.set_attribute(OVERLIMIT, True)
        if isinstance(getattr(exc, "name", None), str):
            span.set_attribute(LIMITER, exc.name)
        raise
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise


#: The one instance: instrument() and uninstrument() add and remove this very object.
server_middleware = ServerMiddleware()


def instrument() -> None:
    """Add both middlewares (once): pushes from this process and runs in its worker."""
    middleware.client.add(client_middleware)
    middleware.server.add(server_middleware)


def uninstrument() -> None:
    middleware.client.remove(client_middleware)
    middleware.server.remove(server_middleware)
