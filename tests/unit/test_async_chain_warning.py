"""An async job runs on a worker thread when a server middleware has no ``acall``: that cap
on async jobs is said once per process, naming the middleware (worker/async_jobs.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from sidequest import middleware
from sidequest.worker import async_jobs


def audit(job: Any, payload: Any, queue: str, call_next: Callable[[], Any]) -> Any:
    return call_next()


class Tenant:
    """A middleware object with only the sync form."""

    def __call__(self, job: Any, payload: Any, queue: str, call_next: Callable[[], Any]) -> Any:
        return call_next()


class Both(Tenant):
    async def acall(self, job: Any, payload: Any, queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        return await call_next()


@pytest.fixture(autouse=True)
def _chain(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """An empty server chain and a process that has not warned yet; the chain is put back."""
    monkeypatch.setattr(async_jobs, "_sync_chain_warned", False)
    caplog.set_level(logging.WARNING, logger="sidequest")
    saved = list(middleware.server)
    middleware.server.clear()
    try:
        yield
    finally:
        middleware.server.clear()
        for entry in saved:
            middleware.server.add(entry)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "acall" in r.getMessage()]


def test_a_middleware_without_acall_is_named_once_per_process(
        caplog: pytest.LogCaptureFixture) -> None:
    middleware.server.add(Both())
    middleware.server.add(audit)
    ready = threading.Barrier(8)
    answers: list[bool] = []

    def ask() -> None:
        ready.wait(timeout=10)  # the processor threads ask at the same moment
        answers.extend(async_jobs.chain_is_async() for _ in range(50))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert answers == [False] * 400
    (message,) = warnings_of(caplog)
    assert f"server middleware {__name__}.audit has no acall coroutine form" in message
    assert "Both" not in message, "the middleware with an acall is not the problem"
    assert "each async job holds a worker thread for its whole run" in message
    assert "at most -c (concurrency) of them run at once" in message
    assert "async def acall(job, payload, queue, call_next)" in message


def test_middleware_objects_are_named_by_their_class(caplog: pytest.LogCaptureFixture) -> None:
    middleware.server.add(Tenant())
    middleware.server.add(audit)
    assert not async_jobs.chain_is_async()
    (message,) = warnings_of(caplog)
    assert (f"server middlewares {__name__}.Tenant, {__name__}.audit have no acall"
            in message)


def test_a_chain_that_runs_on_the_loop_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    middleware.server.add(Both())
    assert async_jobs.chain_is_async()
    middleware.server.clear()
    assert async_jobs.chain_is_async()  # an empty chain too
    assert warnings_of(caplog) == []


def test_an_object_that_cannot_be_called_is_refused_when_added() -> None:
    # A class with `call` (a slip) or only `acall` failed every plain job, one at a time.
    class OnlyCall:
        def call(self, job: object, payload: object, queue: str, call_next: object) -> None:
            pass

    with pytest.raises(TypeError, match=r"cannot be called; give its class a __call__ method"):
        middleware.server.add(OnlyCall())
    with pytest.raises(TypeError, match="cannot be called"):
        middleware.client.prepend(OnlyCall())  # type: ignore[arg-type]
    assert not any(isinstance(entry, OnlyCall) for entry in middleware.server)

    class OnlyAcall:  # for an application whose jobs are all async: accepted, as before
        async def acall(self, job: object, payload: object, queue: str,
                        call_next: object) -> None:
            pass

    only = OnlyAcall()
    middleware.server.add(only)  # type: ignore[arg-type]
    try:
        assert middleware.server.needs_loop()
        # A sync job through it is told what is missing, not "must be callable".
        with pytest.raises(TypeError, match=r"has only an async acall.*give its class a __call__"):
            middleware.server.invoke((None, {}, "default"), lambda: None)
    finally:
        middleware.server.remove(only)  # type: ignore[arg-type]
    assert not middleware.server.needs_loop()
