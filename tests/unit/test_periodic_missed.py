"""The log line of ticks missed while no worker ran: how many, and the last one missed (not
the edge of the grace period); a long outage of a frequent entry is not counted to its end."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sidequest.cron import Every
from sidequest.worker import periodic


def missed(seconds: int, first: int, horizon: float) -> str:
    entry: Any = SimpleNamespace(schedule=Every(seconds))
    return periodic._missed(entry, first, horizon)


def test_one_tick_missed_is_named_alone() -> None:
    assert missed(60, 1_800_000_000, 1_800_000_030.5) == "the tick of 2027-01-15 08:00:00 was"


def test_several_ticks_missed_name_the_first_and_the_last() -> None:
    assert missed(60, 1_800_000_000, 1_800_000_150.0) == (
        "3 ticks, from 2027-01-15 08:00:00 to 2027-01-15 08:02:00, were")


def test_a_long_outage_of_a_frequent_entry_is_not_counted_to_its_end() -> None:
    assert missed(1, 1_800_000_000, 1_800_086_400.0) == (
        f"more than {periodic.MAX_TICKS} ticks, from 2027-01-15 08:00:00 on, were")
    exactly = missed(1, 1_800_000_000, 1_800_000_000 + periodic.MAX_TICKS - 1)
    assert exactly.startswith(f"{periodic.MAX_TICKS} ticks, from ")
