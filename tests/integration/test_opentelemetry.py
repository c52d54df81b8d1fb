"""sidequest.contrib.opentelemetry: a push inside a request's span makes a producer span and
carries W3C ``traceparent`` in the payload; the run is a consumer span in the same trace,
child of the push. Real Redis, an in-process worker, the SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from helpers import running_worker, wait_for
from sidequest import Job
from sidequest.contrib import opentelemetry as otel

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)  # once per process; the API refuses a second one


class Welcome(Job):
    def perform(self, user_id: int) -> None:
        pass


class Failing(Job):
    retry = False

    def perform(self) -> None:
        raise ValueError("no such user")


@pytest.fixture(autouse=True)
def _instrumented(redis_url: str) -> Iterator[None]:
    EXPORTER.clear()
    otel.instrument()
    try:
        yield
    finally:
        otel.uninstrument()


def spans(name: str) -> list[Any]:
    return [s for s in EXPORTER.get_finished_spans() if s.name == name]


def test_a_run_continues_the_trace_of_the_request_that_pushed_it(r: redis.Redis) -> None:
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("POST /signup") as request:
        jid = Welcome.perform_async(42)
    payload = json.loads(r.lrange("queue:default", 0, -1)[0])
    assert payload["traceparent"].startswith("00-")  # a top-level key, as Ruby's writes it
    (publish,) = spans("default publish")
    assert publish.kind == SpanKind.PRODUCER
    assert publish.parent.span_id == request.get_span_context().span_id
    assert publish.attributes["messaging.system"] == "sidekiq"
    assert publish.attributes["messaging.message.id"] == jid
    with running_worker():
        wait_for(lambda: spans("default process"), what="the run's span")
    (process,) = spans("default process")
    assert process.kind == SpanKind.CONSUMER
    assert process.context.trace_id == request.get_span_context().trace_id
    assert process.parent.span_id == publish.context.span_id
    assert process.attributes["messaging.sidekiq.job_class"] == Welcome.wire_name()
    assert process.status.status_code != StatusCode.ERROR


def test_a_failing_run_is_an_error_span_and_still_fails(r: redis.Redis) -> None:
    Failing.perform_async()
    with running_worker():
        wait_for(lambda: spans("default process"), what="the run's span")
    (process,) = spans("default process")
    assert process.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in process.events)


def test_a_push_from_ruby_without_traceparent_starts_a_trace(r: redis.Redis) -> None:
    r.lpush("queue:default", json.dumps({"class": Welcome.wire_name(), "args": [1],
                                         "jid": "a" * 24, "queue": "default",
                                         "created_at": 1.0}))
    with running_worker():
        wait_for(lambda: spans("default process"), what="the run's span")
    (process,) = spans("default process")
    assert process.parent is None
