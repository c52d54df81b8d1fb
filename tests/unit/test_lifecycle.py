"""The order of the application's lifecycle hooks (sidequest.worker.lifecycle), without a
worker: a quiet asked before the startup hooks ran waits for them, and a quiet hook that
hangs leaves the shutdown hooks their share of the stop's budget."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from sidequest import hooks
from sidequest.worker import lifecycle
from sidequest.worker.asyncio_runner import AsyncRunner


@pytest.fixture
def life(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    for moment in hooks.life_hooks:
        monkeypatch.setitem(hooks.life_hooks, moment, [])
    yield []


@pytest.fixture
def runner() -> Iterator[AsyncRunner]:
    made = AsyncRunner(5)
    yield made
    made.close()


def test_a_quiet_asked_while_starting_waits_for_the_startup_hooks(
        life: list[str], runner: AsyncRunner) -> None:
    # A TSTP while the application loads: its quiet hook must find what startup opened.
    done = threading.Event()

    @hooks.on_startup
    async def opens() -> None:
        await asyncio.sleep(0)
        life.append("startup")

    @hooks.on_quiet
    def quiets() -> None:
        life.append("quiet")
        done.set()

    events = lifecycle.LifeEvents(runner)
    events.quiet()
    assert life == []
    events.startup()
    assert done.wait(5) and life == ["startup", "quiet"]


def test_a_hanging_quiet_hook_leaves_the_shutdown_hooks_time(
        life: list[str], runner: AsyncRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "BUDGET", 2.0)
    never = threading.Event()
    hooks.on_quiet(lambda: never.wait(30))
    hooks.on_shutdown(lambda: life.append("shutdown"))
    events = lifecycle.LifeEvents(runner)
    events.startup()
    events.quiet()
    events.shutdown()  # waits at most half the budget for the quiet hook
    never.set()
    assert life == ["shutdown"]


def test_a_stop_that_ran_long_leaves_the_hooks_only_what_is_left_of_their_budget(
        life: list[str], runner: AsyncRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks' budget counts from the stop's deadline for the jobs, not from when the
    jobs were done: a job at its deadline, the threads' grace and the writes came first, and
    the hard deadline (the jobs' timeout plus the budget) killed the process in its hooks,
    before it cleared its record."""
    monkeypatch.setattr(lifecycle, "BUDGET", 2.0)
    never = threading.Event()
    hooks.on_shutdown(lambda: never.wait(30))
    events = lifecycle.LifeEvents(runner)
    events.startup()
    began = time.monotonic()
    events.stop_begins(began - 1.5)  # the jobs' deadline passed 1.5 s ago
    events.shutdown()
    never.set()
    assert time.monotonic() - began < 1.5  # 0.5 s left, not the whole 2 s


def test_the_hooks_leave_a_moment_to_push_back_the_jobs_still_running(
        life: list[str], runner: AsyncRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs still running at the deadline go back after the hooks: hooks that used the
    whole budget left them no time before the hard deadline, and each was recovered as a
    death of its process instead."""
    monkeypatch.setattr(lifecycle, "BUDGET", 4.0)
    never = threading.Event()
    hooks.on_shutdown(lambda: never.wait(30))
    events = lifecycle.LifeEvents(runner)
    events.startup()
    began = time.monotonic()
    events.stop_begins(began - 1.5)  # the jobs' deadline passed 1.5 s ago: 2.5 s are left
    events.shutdown()
    never.set()
    took = time.monotonic() - began
    assert took < 2.5 - lifecycle.PUSH_BACK_RESERVE + 0.6, f"{took:.2f} s: no reserve kept"
