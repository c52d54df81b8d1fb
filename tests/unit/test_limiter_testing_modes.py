"""Limiters in the testing modes let every call through without Redis, but the mistakes a
worker refuses are refused here too: a `with` nested in another on the same concurrent
limiter, and a plain `with` inside ``async def perform``. Before, both passed in unit tests
and failed on every run in production."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidequest import Job, connection, limiter, testing

ONE = limiter.concurrent("ltm-one-slot", 1)
ran: list[str] = []


class Nested(Job):
    def perform(self) -> None:
        with ONE, ONE:
            ran.append("nested")


class Sequential(Job):
    def perform(self) -> None:
        with ONE:
            ran.append("first")
        with ONE:  # released in between: taken again
            ran.append("second")


class PlainWithInAsync(Job):
    async def perform(self) -> None:
        with ONE:
            ran.append("plain")


class AsyncWith(Job):
    async def perform(self) -> None:
        async with ONE:
            ran.append("async")


@pytest.fixture(autouse=True)
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse() -> None:
        raise AssertionError("a limiter in the testing modes touched Redis")

    monkeypatch.setattr(connection, "client", refuse)
    monkeypatch.setattr(connection, "client_for", lambda shard: refuse())
    ran.clear()
    testing.clear_all()
    with testing.fake():
        yield
    testing.clear_all()


def test_a_nested_with_on_a_one_slot_limiter_is_refused() -> None:
    Nested.perform_async()
    with pytest.raises(RuntimeError, match="already held by this same job"):
        testing.drain_all()
    assert ran == []


def test_a_limiter_taken_again_after_its_release_is_fine() -> None:
    Sequential.perform_async()
    AsyncWith.perform_async()
    assert testing.drain_all() == 2
    assert ran == ["first", "second", "async"]


def test_a_plain_with_inside_async_perform_is_refused() -> None:
    PlainWithInAsync.perform_async()
    with pytest.raises(RuntimeError, match="use `async with`"):
        testing.drain_all()


def test_a_plain_with_in_a_thread_an_async_job_started_is_fine() -> None:
    import asyncio

    class HandsToAThread(Job):
        async def perform(self) -> None:
            def blocking() -> None:
                with ONE:
                    ran.append("thread")

            await asyncio.to_thread(blocking)

    HandsToAThread.perform_async()
    assert testing.drain_all() == 1 and ran == ["thread"]


class InlineChild(Job):
    def perform(self) -> None:
        with ONE:
            ran.append("child")


class InlineParent(Job):
    def perform(self) -> None:
        with ONE:
            ran.append("parent")
            InlineChild.perform_async()  # inline: runs now, as another job would elsewhere


class AsyncInlineParent(Job):
    async def perform(self) -> None:
        InlineChild.perform_async()  # a sync push from async code: the child is a sync job


def test_inline_a_pushed_job_holds_none_of_its_pushers_slots() -> None:
    with testing.inline():
        InlineParent.perform_async()
        AsyncInlineParent.perform_async()
    assert ran == ["parent", "child", "child"]
