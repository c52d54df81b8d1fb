"""sidequest.contrib.opentelemetry: a push inside a request's span makes a producer span and
carries W3C ``traceparent`` in the payload; the run is a consumer span in the same trace,
child of the push. An ``async def perform`` job's span is made on the event loop, so async jobs
run there many at once, not one per worker thread. A failure is an error span; a run that a
full rate limiter sends back is not. Real Redis, an in-process worker, the SDK's in-memory
exporter."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from helpers import running_worker, wait_for
from sidequest import Job, keys, limiter, middleware
from sidequest.api import RetrySet, ScheduledSet
from sidequest.contrib import opentelemetry as otel


class StartThreads(SpanProcessor):
    """Records the thread each span starts on: a run's, on the event loop's for an async
    job whose middleware ran there."""

    def __init__(self) -> None:
        self.threads: dict[str, list[str]] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.threads.setdefault(span.name, []).append(threading.current_thread().name)


EXPORTER = InMemorySpanExporter()
STARTS = StartThreads()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
_provider.add_span_processor(STARTS)
trace.set_tracer_provider(_provider)  # once per process; the API refuses a second one


class Welcome(Job):
    def perform(self, user_id: int) -> None:
        pass


class Failing(Job):
    retry = False

    def perform(self) -> None:
        raise ValueError("no such user")


class AsyncWelcome(Job):
    current: list[trace.SpanContext] = []

    async def perform(self, user_id: int) -> None:
        await asyncio.sleep(0)
        AsyncWelcome.current.append(trace.get_current_span().get_span_context())


class AsyncFailing(Job):
    retry = False

    async def perform(self) -> None:
        await asyncio.sleep(0)
        raise ValueError("no such user")


#: Held by the test while the jobs below run: each finds it full and is rescheduled.
obs_full = limiter.concurrent("obs-full", 1)


class OverFull(Job):
    def perform(self) -> None:
        with obs_full:
            pass


class AsyncOverFull(Job):
    async def perform(self) -> None:
        async with obs_full:
            pass


class Gated(Job):
    """Waits until three of its kind are running at once."""

    retry = False
    arrived = 0
    gate: asyncio.Event | None = None  # made on the worker's loop by the first job

    async def perform(self) -> None:
        if Gated.gate is None:
            Gated.gate = asyncio.Event()
        Gated.arrived += 1
        if Gated.arrived == 3:
            Gated.gate.set()
        await asyncio.wait_for(Gated.gate.wait(), 15)


@pytest.fixture(autouse=True)
def _instrumented(redis_url: str) -> Iterator[None]:
    EXPORTER.clear()
    STARTS.threads.clear()
    AsyncWelcome.current.clear()
    Gated.arrived, Gated.gate = 0, None
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
    assert process.status.description == "ValueError: no such user"  # as the SDK words it
    assert any(e.name == "exception" for e in process.events)


def test_a_push_from_ruby_without_traceparent_starts_a_trace(r: redis.Redis) -> None:
    r.lpush("queue:default", json.dumps({"class": Welcome.wire_name(), "args": [1],
                                         "jid": "a" * 24, "queue": "default",
                                         "created_at": 1.0}))
    with running_worker():
        wait_for(lambda: spans("default process"), what="the run's span")
    (process,) = spans("default process")
    assert process.parent is None


def test_an_async_run_continues_the_trace_on_the_event_loop(r: redis.Redis) -> None:
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("POST /signup") as request:
        AsyncWelcome.perform_async(42)
    (publish,) = spans("default publish")
    with running_worker():
        wait_for(lambda: spans("default process"), what="the run's span")
    (process,) = spans("default process")
    assert process.kind == SpanKind.CONSUMER
    assert process.context.trace_id == request.get_span_context().trace_id
    assert process.parent.span_id == publish.context.span_id
    assert process.attributes["messaging.sidekiq.job_class"] == AsyncWelcome.wire_name()
    assert process.attributes["messaging.operation"] == "process"
    assert STARTS.threads["default process"] == ["sidequest-asyncio"], \
        "made by the middleware's acall, on the loop, not by a thread waiting for the job"
    (current,) = AsyncWelcome.current
    assert current.span_id == process.context.span_id, "current inside the job"
    assert process.status.status_code != StatusCode.ERROR


def test_a_failing_async_run_is_an_error_span_and_still_fails(r: redis.Redis) -> None:
    AsyncFailing.perform_async()
    with running_worker():
        wait_for(lambda: spans("default process"), what="the run's span")
        wait_for(lambda: r.get(keys.STAT_FAILED) == "1", what="the failure counted")
    (process,) = spans("default process")
    assert process.status.status_code == StatusCode.ERROR
    (event,) = [e for e in process.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "ValueError"


@pytest.mark.parametrize("job", [OverFull, AsyncOverFull])
def test_an_over_limit_run_is_not_an_error_span(r: redis.Redis, job: type[Job]) -> None:
    """The worker reschedules it without a retry and counts no failure: its span says over
    limit (and which limiter), with no error status and no exception recorded."""
    obs_full.acquire()
    try:
        jid = job.perform_async()
        with running_worker():
            wait_for(lambda: spans("default process"), what="the run's span")
            (entry,) = wait_for(lambda: list(ScheduledSet()), what="the reschedule")
    finally:
        obs_full.release()
    assert entry.jid == jid and entry.item["overlimit_count"] == 1 and RetrySet().size == 0
    (process,) = spans("default process")
    assert process.status.status_code == StatusCode.UNSET
    assert not [e for e in process.events if e.name == "exception"]
    assert process.attributes["sidequest.overlimit"] is True
    assert process.attributes["sidequest.limiter.name"] == "obs-full"


def test_async_runs_under_instrument_run_beyond_the_thread_count() -> None:
    assert otel.server_middleware in list(middleware.server)
    for _ in range(3):
        Gated.perform_async()
    with running_worker(concurrency=1):
        # Each holding the one thread, the second would not start before the first's 15 s.
        wait_for(lambda: Gated.arrived == 3, timeout=8, what="three async jobs at once at -c 1")
        wait_for(lambda: len(spans("default process")) == 3, what="their spans")
    assert all(s.status.status_code != StatusCode.ERROR for s in spans("default process"))


def test_uninstrument_takes_the_middleware_out() -> None:
    otel.uninstrument()
    assert otel.server_middleware not in list(middleware.server)
    assert otel.client_middleware not in list(middleware.client)
    otel.instrument()
    otel.instrument()  # once only
    assert list(middleware.server).count(otel.server_middleware) == 1


def test_a_run_given_up_as_stuck_ends_its_span_as_an_error_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """A job stuck past its time limit (in C code, or blocking the event loop) never ends
    its run before its process retires: its span never ended, and no trace showed the run
    an operator looks for. The worker tells the chain it gave up (sidequest.metrics)."""
    from sidequest import metrics
    from sidequest.errors import JobTimeout

    payload = {"class": "Stuck", "jid": "f" * 24, "args": [], "queue": "default"}
    inside, release = threading.Event(), threading.Event()

    def stuck() -> None:
        inside.set()
        release.wait(10)  # stuck, as far as the worker knows

    run = threading.Thread(target=otel.server_middleware, args=(None, payload, "default", stuck))
    run.start()
    assert inside.wait(5)
    metrics.given_up(payload, "default", [otel.server_middleware],
                     JobTimeout("the job ran past its timeout and did not stop"))
    (span,) = spans("default process")  # ended and exported while the call is still stuck
    assert span.status.status_code == StatusCode.ERROR
    assert "did not stop" in (span.status.description or "")
    assert [event.name for event in span.events] == ["exception"]
    release.set()  # should the call return after all, the span is not ended twice
    run.join(5)
    assert len(spans("default process")) == 1
    assert not [rec for rec in caplog.records if "ended span" in rec.getMessage()]


def test_runs_sharing_a_jid_or_without_one_each_end_their_span() -> None:
    """The live spans were kept by jid: a second run of the same jid (set by hand), or any
    two payloads without a jid, took the first one's place, and the first span never
    ended."""
    first_in, second_in, release = threading.Event(), threading.Event(), threading.Event()

    def run(payload: dict[str, Any], inside: threading.Event) -> threading.Thread:
        def job() -> None:
            inside.set()
            release.wait(10)

        thread = threading.Thread(target=otel.server_middleware,
                                  args=(None, payload, "default", job))
        thread.start()
        assert inside.wait(5)
        return thread

    for jid in ("report-7", None):
        EXPORTER.clear()
        first_in.clear(), second_in.clear(), release.clear()
        payload = {"class": "Shared", "args": [], "queue": "default", "jid": jid}
        threads = [run(dict(payload), first_in), run(dict(payload), second_in)]
        release.set()
        for thread in threads:
            thread.join(5)
        assert len(spans("default process")) == 2, jid
