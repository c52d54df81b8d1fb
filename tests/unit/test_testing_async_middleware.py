"""The testing modes run an ``async def perform`` job through the server middleware's
``acall`` when every middleware has one, as a worker does on its event loop; any other job
through ``__call__``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sidequest import Job, testing

seen: list[str] = []


class TAMAsync(Job):
    async def perform(self, n: int) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        seen.append(f"async {n}")


class TAMSync(Job):
    def perform(self, n: int) -> None:
        seen.append(f"sync {n}")


class AcallOnly:
    async def acall(self, job: Job, payload: dict[str, Any], queue: str,
                    call_next: Callable[[], Any]) -> Any:
        seen.append(f"acall-only {payload['args'][0]} {job.jid == payload['jid']}")
        return await call_next()


class BothForms:
    def __call__(self, job: Job, payload: dict[str, Any], queue: str,
                 call_next: Callable[[], Any]) -> Any:
        seen.append("both: __call__")
        return call_next()

    async def acall(self, job: Job, payload: dict[str, Any], queue: str,
                    call_next: Callable[[], Any]) -> Any:
        seen.append("both: acall")
        return await call_next()


def plain(job: Job, payload: dict[str, Any], queue: str, call_next: Callable[[], Any]) -> Any:
    seen.append("plain")
    return call_next()


@pytest.fixture(autouse=True)
def fresh(fake_without_redis: None) -> Iterator[None]:
    seen.clear()
    yield
    testing.server_middleware.clear()


def test_an_acall_only_middleware_runs_around_an_async_job() -> None:
    testing.server_middleware.add(AcallOnly())  # type: ignore[arg-type]
    TAMAsync.perform_async(1)
    assert TAMAsync.drain() == 1
    assert seen == ["acall-only 1 True", "async 1"]


def test_it_runs_when_the_test_itself_runs_on_an_event_loop() -> None:
    testing.server_middleware.add(AcallOnly())  # type: ignore[arg-type]

    async def async_test() -> int:
        TAMAsync.perform_async(2)
        return TAMAsync.drain()

    assert asyncio.run(async_test()) == 1
    assert seen == ["acall-only 2 True", "async 2"]


def test_inline_runs_an_async_job_through_acall_too() -> None:
    testing.server_middleware.add(AcallOnly())  # type: ignore[arg-type]
    with testing.inline():
        TAMAsync.perform_async(3)
    assert seen == ["acall-only 3 True", "async 3"]


def test_with_both_forms_async_jobs_get_acall_and_sync_jobs_call() -> None:
    testing.server_middleware.add(BothForms())
    TAMAsync.perform_async(4)
    TAMSync.perform_async(5)
    assert testing.drain_all() == 2
    assert seen == ["both: acall", "async 4", "both: __call__", "sync 5"]


def test_a_middleware_without_acall_sends_async_jobs_through_call() -> None:
    """As on a worker, which then runs the async job on a thread."""
    testing.server_middleware.add(plain)
    testing.server_middleware.add(BothForms())
    TAMAsync.perform_async(6)
    TAMAsync.drain()
    assert seen == ["plain", "both: __call__", "async 6"]


def test_a_sync_job_refuses_an_acall_only_middleware() -> None:
    testing.server_middleware.add(AcallOnly())  # type: ignore[arg-type]
    TAMSync.perform_async(7)
    with pytest.raises(TypeError, match=r"has only an async acall.*give its class a __call__"):
        TAMSync.drain()
    assert seen == []
