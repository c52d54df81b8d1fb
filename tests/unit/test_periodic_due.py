"""Which ticks a poller offers, from the entry's last tick and Redis's now: pure arithmetic,
no Redis (the client is never used by ``due``)."""

from __future__ import annotations

import threading
from typing import Any

from sidequest import periodic_jobs
from sidequest.config import build
from sidequest.worker.periodic import PeriodicPoller

NOW = 1_800_000_000.4  # a Redis TIME reading, between two whole seconds


def poller(**config: Any) -> PeriodicPoller:
    return PeriodicPoller(build(**config), None, threading.Event(), [])  # type: ignore[arg-type]


def every(seconds: int, catch_up: bool = False) -> periodic_jobs.Entry:
    return periodic_jobs.make_entry("app.jobs.Ping", every=seconds, catch_up=catch_up,
                                    name="ping")


def test_on_time_ticks_are_offered_in_order() -> None:
    assert poller().due(every(1), int(NOW) - 3, NOW) == [
        (int(NOW) - 2, int(NOW) - 2), (int(NOW) - 1, int(NOW) - 1), (int(NOW), int(NOW))]
    assert poller().due(every(1), int(NOW), NOW) == []  # the current tick is done


def test_ticks_late_within_the_grace_are_still_offered() -> None:
    ticks = poller(periodic_grace=60.0).due(every(10), int(NOW) - 55, NOW)
    assert [t for t, _ in ticks] == [1_799_999_950, 1_799_999_960, 1_799_999_970,
                                     1_799_999_980, 1_799_999_990, 1_800_000_000]


def test_missed_ticks_are_skipped_or_caught_up_once() -> None:
    last = int(NOW) - 3600
    skipped = poller(periodic_grace=60.0).due(every(600), last, NOW)
    # 1_799_997_000 .. 1_799_999_400 were missed; 1_800_000_000 is due now.
    assert skipped == [(1_800_000_000, 1_800_000_000)]
    caught = poller(periodic_grace=60.0).due(every(600, catch_up=True), last, NOW)
    assert caught == [(1_799_997_000, int(NOW - 60)),  # the first missed, once
                      (1_800_000_000, 1_800_000_000)]


def test_catch_up_then_the_ticks_within_the_grace() -> None:
    ticks = poller(periodic_grace=5.0).due(every(2, catch_up=True), int(NOW) - 100, NOW)
    assert ticks[0] == (int(NOW) - 98, int(NOW - 5))
    assert [t for t, _ in ticks[1:]] == [1_799_999_996, 1_799_999_998, 1_800_000_000]


def test_a_lost_state_starts_now() -> None:
    assert poller().due(every(1), 0, NOW) == [(int(NOW), int(NOW))]
