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

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "sidequest.contrib.opentelemetry needs the OpenTelemetry API: "
        "pip install 'sidequest[otel]'"
    ) from exc

from sidequest import __version__, middleware
from sidequest.payload import Payload

SYSTEM = "sidekiq"  # the value Ruby's instrumentation writes; one system, two languages


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
    An exception is recorded on the span and marks it as an error, then passes on. The
    ``acall`` form does the same around an ``async def perform`` job, which then runs on the
    event loop rather than holding a worker thread for its whole run."""

    def __call__(self, job: Any, payload: Payload, queue: str,
                 call_next: Callable[[], Any]) -> Any:
        with _consumer_span(payload, queue):
            return call_next()

    async def acall(self, job: Any, payload: Payload, queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        # The span is current in this task's context, which the job's coroutine runs in:
        # its own spans (an HTTP call's) are children of this one.
        with _consumer_span(payload, queue):
            return await call_next()


def _consumer_span(payload: Payload, queue: str) -> AbstractContextManager[trace.Span]:
    parent = propagate.extract(payload)
    attributes = _attributes(payload, queue, "process")
    if isinstance(payload.get("retry_count"), int):
        attributes["messaging.sidekiq.retry_count"] = payload["retry_count"]
    # record_exception and set_status_on_exception are on by default: a raise is an error.
    return _tracer().start_as_current_span(
        f"{queue} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
    )


#: The one instance: instrument() and uninstrument() add and remove this very object.
server_middleware = ServerMiddleware()


def instrument() -> None:
    """Add both middlewares (once): pushes from this process and runs in its worker."""
    middleware.client.add(client_middleware)
    middleware.server.add(server_middleware)


def uninstrument() -> None:
    middleware.client.remove(client_middleware)
    middleware.server.remove(server_middleware)
