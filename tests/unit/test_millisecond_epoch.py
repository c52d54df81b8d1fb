"""An epoch in milliseconds (``time.time() * 1000``, JavaScript's ``Date.now()``) would
schedule a job for the year 58000: a time more than 100 years ahead is refused, saying so.
Sidekiq's rule stays: a number below 1e9 is relative seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import sidequest
from sidequest import Job

YEAR = 365.25 * 86400


class MEJob(Job):
    def perform(self, n: int) -> None:
        pass



PUSHES: dict[str, Callable[[float], Any]] = {
    "perform_at": lambda when: MEJob.perform_at(when, 1),
    "perform_in": lambda when: MEJob.perform_in(when, 1),
    "set().perform_at": lambda when: MEJob.set(queue="low").perform_at(when, 1),
    "enqueue(at=)": lambda when: sidequest.enqueue("tests.MEJob", 1, at=when),
    "enqueue(delay=)": lambda when: sidequest.enqueue("tests.MEJob", 1, delay=when),
}


@pytest.mark.parametrize("push", PUSHES.values(), ids=PUSHES.keys())
def test_milliseconds_are_refused_with_what_to_do(push: Callable[[float], Any],
                                                 pushed: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match=r"looks like milliseconds.*divide it by 1000"):
        push(time.time() * 1000)
    assert pushed == []


@pytest.mark.parametrize("push", PUSHES.values(), ids=PUSHES.keys())
def test_a_time_decades_ahead_is_still_taken(push: Callable[[float], Any],
                                            pushed: list[dict[str, Any]]) -> None:
    when = time.time() + 90 * YEAR
    push(when)
    assert pushed[0]["at"] == pytest.approx(when)


def test_below_1e9_is_still_relative_seconds(pushed: list[dict[str, Any]]) -> None:
    before = time.time()
    MEJob.perform_at(999_999_999, 1)  # about 31.7 years from now, not 2001
    assert pushed[0]["at"] == pytest.approx(before + 999_999_999, abs=5)

