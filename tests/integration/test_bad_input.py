"""Bad input gets a clear answer and loses nothing: unreadable payloads go to the dead set
byte for byte, unknown classes retry, and no exception a job raises kills its thread."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, keys, middleware
from sidequest.api import metrics

DONE = threading.Event()


class Canary(Job):
    """Pushed after the bad input: when it runs, the worker survived."""

    def perform(self) -> None:
        DONE.set()


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class Raises(Job):
    def perform(self, kind: str) -> None:
        if kind == "exit":
            raise SystemExit(3)
        if kind == "interrupt":
            raise KeyboardInterrupt
        if kind == "badstr":
            raise BadStr
        raise ValueError("x" * 10_000_000)


@pytest.fixture(autouse=True)
def _reset() -> None:
    DONE.clear()


RAW_BAD = [
    b"{not json",
    b"",
    b"null",
    b"42",
    b'{"class":"X","args":[1,',
    b'{"args":[]}',
    b'{"class":"X","args":"not a list"}',
    b'{"class":"X","args":[1],"kwargs":[1,2]}',  # Ruby may write any JSON there
    b'{"class":7,"args":[]}',
    b'{"class":"X","args":[],"queue":""}',
    b'\xff\xfe{"class":"X"}',
    "[1]".encode("utf-16"),  # a JSON list, but not UTF-8: unreadable text, kept as it is
    b"[" * 100_000 + b"]" * 100_000,
]


#: JSON, but not an object: kept whole, as the argument of a job-shaped dead entry.
NOT_OBJECTS = {b"null", b"42"}


def test_unreadable_payloads_go_dead_and_lose_nothing(redis_url: str) -> None:
    raw_client = redis.Redis.from_url(redis_url)
    raw_client.lpush("queue:default", *RAW_BAD)
    Canary.perform_async()
    with running_worker(concurrency=2):
        wait_for(DONE.is_set, what="the canary job after the bad ones")
        wait_for(lambda: raw_client.zcard("dead") == len(RAW_BAD), what="all bad in dead")
    dead = set(raw_client.zrange("dead", 0, -1))
    assert dead >= set(RAW_BAD) - NOT_OBJECTS  # byte for byte, as Sidekiq keeps them
    # Stored as they were, these broke Sidekiq's Dead page (its entries must be objects).
    wrapped = [json.loads(entry) for entry in dead - set(RAW_BAD)]
    assert {entry["args"][0].encode() for entry in wrapped} == NOT_OBJECTS
    assert all(entry["class"] == "(unreadable payload)" and entry["queue"] == "default"
               and entry["retry"] == 0 and "not an object" in entry["error_message"]
               for entry in wrapped)
    assert raw_client.llen("queue:default") == 0 and raw_client.keys("sq:inprogress:*") == []


def test_unknown_class_is_an_ordinary_failure(r: redis.Redis) -> None:
    r.lpush("queue:default", json.dumps(
        {"class": "Missing::Job", "args": [1], "jid": "a" * 24, "queue": "default", "retry": True}
    ))
    Canary.perform_async()
    with running_worker():
        wait_for(DONE.is_set, what="canary")
        (member,) = wait_for(lambda: r.zrange("retry", 0, -1), what="retry entry")
    job = json.loads(member)
    assert job["error_class"] == "sidequest.errors.UnknownJobError"
    assert "'Missing::Job'" in job["error_message"] and "-r" in job["error_message"]


def test_an_unknown_class_goes_through_the_server_middleware(r: redis.Redis) -> None:
    """Its failure is counted against its class (the Metrics page, /prometheus, the process's
    exporter, traces): a deploy that dropped a class showed only in the global total."""
    seen: list[tuple[str, str, str]] = []

    def watch(job: Any, payload: dict[str, Any], queue: str, call_next: Any) -> Any:
        try:
            return call_next()
        except Exception as exc:
            seen.append((job.jid, payload["class"], type(exc).__name__))
            raise

    def swallow(job: Any, payload: dict[str, Any], queue: str, call_next: Any) -> Any:
        with contextlib.suppress(Exception):  # a middleware that eats errors runs nothing
            call_next()

    r.lpush("queue:default", json.dumps(
        {"class": "app.gone.Ghost", "args": [1], "jid": "g" * 24, "queue": "default"}))
    middleware.server.add(watch)
    try:
        with running_worker():
            wait_for(lambda: r.zcard("retry") == 1, what="the ghost job in the retry set")
            # One that a middleware's error swallowed is a failure all the same: it cannot run.
            middleware.server.prepend(swallow)
            r.lpush("queue:default", json.dumps(
                {"class": "app.gone.Ghost", "args": [2], "jid": "h" * 24, "queue": "default"}))
            wait_for(lambda: r.zcard("retry") == 2, what="the second ghost job in the retry set")
    finally:
        middleware.server.remove(watch)
        middleware.server.remove(swallow)
    assert seen == [("g" * 24, "app.gone.Ghost", "UnknownJobError"),
                    ("h" * 24, "app.gone.Ghost", "UnknownJobError")], seen
    recorded, _ = metrics.for_class("app.gone.Ghost")
    assert recorded.processed == 2 and recorded.failed >= 1, recorded  # the first, at least


@pytest.mark.parametrize("kind", ["exit", "interrupt", "badstr", "huge"])
def test_any_exception_is_a_job_failure(r: redis.Redis, kind: str) -> None:
    Raises.perform_async(kind)
    Canary.perform_async()
    with running_worker(concurrency=1):  # one thread: it must survive to run the canary
        (member,) = wait_for(lambda: r.zrange("retry", 0, -1), what="retry entry")
        wait_for(DONE.is_set, what="canary on the same thread")
    job: dict[str, Any] = json.loads(member)
    expected = {"exit": "SystemExit", "interrupt": "KeyboardInterrupt",
                "badstr": f"{__name__}.BadStr", "huge": "ValueError"}[kind]
    assert job["error_class"] == expected
    if kind == "huge":
        assert job["error_message"] == "x" * 10_000
    if kind == "badstr":
        assert job["error_message"] == "!!! ERROR MESSAGE THREW AN ERROR !!!"


class TakesTwo(Job):
    def perform(self, user_id: int, note: str) -> None:
        if note == "inside":
            raise TypeError("raised by the job itself")


class AsyncTakesTwo(Job):
    async def perform(self, user_id: int, note: str) -> None:
        if note == "inside":
            raise TypeError("raised by the job itself")


@pytest.mark.parametrize("cls", [TakesTwo, AsyncTakesTwo])
def test_arguments_perform_cannot_take_are_named(r: redis.Redis, cls: type[Job]) -> None:
    """A payload from older code or another client: the error names the signature and says
    why, instead of a TypeError whose traceback shows only the worker's frames. A TypeError
    the job raises itself is left as it is."""
    name = f"{__name__}.{cls.__name__}"
    for args in ([1], [1, "inside"]):
        r.lpush("queue:default", json.dumps(
            {"class": name, "args": args, "jid": f"{len(args):024d}", "queue": "default",
             "retry": True}))
    with running_worker():
        members = wait_for(lambda: (m := r.zrange("retry", 0, -1)) and len(m) == 2 and m,
                           what="both jobs in retry")
    errors = {json.loads(m)["jid"]: json.loads(m) for m in members}
    short, inside = errors[f"{1:024d}"], errors[f"{2:024d}"]
    assert short["error_class"] == inside["error_class"] == "TypeError"
    assert short["error_message"].startswith(
        f"{name}.perform(user_id, note) cannot take these arguments: missing a required "
        "argument: 'note'; the job was pushed with arguments")
    assert "older or newer than this worker's" in short["error_message"]
    assert inside["error_message"] == "raised by the job itself"


class NoPerform(Job):
    """A base for job classes, or a job whose perform is misspelt."""

    queue = "default"

    def preform(self, user_id: int) -> None:
        pass


def test_a_class_without_perform_is_refused_at_the_push(r: redis.Redis) -> None:
    """In the worker it is an unknown class (never registered), whose error blamed the
    worker's imports, retried for weeks; now the push says what is missing."""
    refused = r"NoPerform defines no perform\(\), so no worker could run it: .*did you " \
              r"mean to name 'preform' perform\?"
    with pytest.raises(TypeError, match=refused):
        NoPerform.perform_async(1)
    with pytest.raises(TypeError, match=refused):
        NoPerform.perform_in(60, 1)
    with pytest.raises(TypeError, match=refused):
        NoPerform.perform_bulk([[1], [2]])
    assert r.keys("*") == [], "nothing was written"


class RubyStub(Job):
    name = "HardJob"  # runs in Ruby: a stub to push it needs no perform


def test_a_named_stub_for_another_process_needs_no_perform(r: redis.Redis) -> None:
    jid = RubyStub.perform_async(1)
    assert jid and json.loads(r.lindex("queue:default", 0))["class"] == "HardJob"


def test_an_expired_job_of_an_unknown_class_is_dropped_not_failed(r: redis.Redis) -> None:
    # The expiry guard drops it before its perform would run, as it drops a known one.
    r.lpush("queue:default", json.dumps(
        {"class": "app.gone.Ghost", "args": [1], "jid": "e" * 24, "queue": "default",
         "expires_at": time.time() - 60}))
    Canary.perform_async()
    with running_worker():
        wait_for(DONE.is_set, what="canary")
        wait_for(lambda: r.get(keys.STAT_EXPIRED) == "1", what="the ghost job to expire")
    assert r.zcard("retry") == 0 and r.llen("queue:default") == 0


def test_a_fail_line_is_followed_by_what_comes_next(r: redis.Redis,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sidequest")
    retried = Raises.perform_async("badstr")
    dropped = Raises.set(retry=False).perform_async("badstr")
    buried = Raises.set(retry=0).perform_async("badstr")
    with running_worker():
        wait_for(lambda: r.zcard("retry") == 1 and r.zcard("dead") == 1,
                 what="one retry and one dead job")
    said = {getattr(rec, "jid", None): rec.getMessage() for rec in caplog.records
            if getattr(rec, "jid", None) and " fail: " not in f" {rec.getMessage()}"
            and rec.getMessage() not in ("start", "done")}
    assert re.search(r"retry 1 in \d+ s$", said[retried]), said
    assert said[dropped].endswith("not retried (retry = False): dropped"), said
    assert said[buried].endswith("no retry left: moved to the dead set"), said


class _AsyncOnly:
    """A middleware with only the coroutine form, as an application whose jobs are all
    async may write: the worker cannot call it from a thread."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def acall(self, job: Any, payload: dict[str, Any], queue: str, call_next: Any) -> Any:
        try:
            return await call_next()
        except Exception as exc:
            self.seen.append((payload["class"], type(exc).__name__))
            raise


def test_an_unknown_class_passes_a_middleware_that_has_only_acall(r: redis.Redis) -> None:
    """It ran through the chain on a thread, and failed with "the first argument must be
    callable" instead of saying its class is unknown."""
    watch = _AsyncOnly()
    r.lpush("queue:default", json.dumps(
        {"class": "app.gone.Ghost", "args": [1], "jid": "k" * 24, "queue": "default"}))
    middleware.server.add(watch)  # type: ignore[arg-type]
    try:
        with running_worker():
            (member,) = wait_for(lambda: r.zrange("retry", 0, -1), what="the retry entry")
    finally:
        middleware.server.remove(watch)  # type: ignore[arg-type]
    assert json.loads(member)["error_class"] == "sidequest.errors.UnknownJobError"
    assert watch.seen == [("app.gone.Ghost", "UnknownJobError")]
