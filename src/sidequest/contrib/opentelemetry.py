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

from collections.abc import Callable
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


def server_middleware(job: Any, payload: Payload, queue: str,
                      call_next: Callable[[], Any]) -> Any:
    """A CONSUMER span around the run, continuing the trace the payload carries (if any).
    An exception is recorded on the span and marks it as an error, then passes on."""
    parent = propagate.extract(payload)
    attributes = _attributes(payload, queue, "process")
    if isinstance(payload.get("retry_count"), int):
        attributes["messaging.sidekiq.retry_count"] = payload["retry_count"]
    with _tracer().start_as_current_span(
        f"{queue} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
    ):
        return call_next()


def instrument() -> None:
    """Add both middlewares (once): pushes from this process and runs in its worker."""
    middleware.client.add(client_middleware)
    middleware.server.add(server_middleware)


def uninstrument() -> None:
    middleware.client.remove(client_middleware)
    middleware.server.remove(server_middleware)
