"""Fake mode's order across classes survives the Sidekiq idiom ``X.jobs.clear()``: a payload
put in a list by hand counts as the newest, whatever object was there before, and the
order's bookkeeping does not outgrow the jobs kept."""

from __future__ import annotations

from typing import Any

import pytest

from sidequest import Job, testing
from sidequest.testing_store import Store

ran: list[str] = []


class TSOFirst(Job):
    def perform(self, n: int) -> None:
        ran.append(f"first {n}")


class TSOHand(Job):
    def perform(self, n: int) -> None:
        ran.append(f"hand {n}")


@pytest.fixture(autouse=True)
def fresh(fake_without_redis: None) -> None:
    ran.clear()


def _by_hand(n: int) -> dict[str, Any]:
    return {"class": TSOHand.wire_name(), "args": [n], "queue": "default",
            "jid": f"{n:024x}", "created_at": 0.0, "enqueued_at": 0.0}


def test_hand_made_payloads_run_after_the_jobs_pushed_before_them() -> None:
    for round_ in range(50):
        ran.clear()
        TSOFirst.perform_bulk([[n] for n in range(20)])
        TSOFirst.jobs.clear()  # frees those payloads: a new dict may take one's id
        TSOFirst.perform_async(round_)
        TSOHand.jobs.extend(_by_hand(n) for n in range(20))
        assert testing.drain_all() == 21
        assert ran[0] == f"first {round_}", f"round {round_}: {ran[:3]}"


def test_the_order_map_stays_bounded_when_lists_are_cleared_by_hand() -> None:
    store = Store()
    cleared: list[dict[str, Any]] = []  # the test still holds them: their ids stay taken
    for _ in range(200):
        store.add([{"class": "C", "args": [n], "queue": "default"} for n in range(10)])
        cleared.extend(store.jobs("C"))
        store.jobs("C").clear()
    store.add([{"class": "C", "args": [0], "queue": "default"}])
    assert len(store._seq) <= 100  # not the 2,001 ever added
    assert store.pop("C") is not None and store.pop(None) is None
