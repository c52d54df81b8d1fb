"""Bad limiter arguments are refused when the limiter is made, with an error naming the
limiter, the argument and what would do; nothing touches Redis."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from sidequest import limiter


@pytest.mark.parametrize(("make", "words"), [
    (lambda: limiter.bucket("api", 10, "minutes"),
     "interval 'minutes': did you mean 'minute'? use one of second"),
    (lambda: limiter.window("api", 10, 0), "interval must be a finite number"),
    (lambda: limiter.window("api", 10, math.nan), "got nan"),
    (lambda: limiter.bucket("api", 10, math.inf), "got inf"),
    (lambda: limiter.bucket("api", 10, True), "got True"),
    (lambda: limiter.bucket("api", 10, "second", wait_timeout="5"), "wait_timeout must be"),
    (lambda: limiter.window("api", 10, 1, wait_timeout=-1), "seconds >= 0, got -1"),
    (lambda: limiter.concurrent("api", 5, lock_timeout=0), "lock_timeout must be"),
    (lambda: limiter.concurrent("api", 5, lock_timeout=None), "got None"),
    (lambda: limiter.concurrent("api", 0), "the limit must be a whole number >= 1, got 0"),
    (lambda: limiter.concurrent("api", 2.5), "got 2.5"),
    (lambda: limiter.concurrent("", 5), "non-empty name"),
    (lambda: limiter.bucket("a|b", 5, 1), "without '|'"),
])
def test_bad_arguments_are_named(make: Any, words: str) -> None:
    with pytest.raises(ValueError, match="limiter") as raised:
        make()
    assert words in str(raised.value)


def test_good_arguments_are_kept() -> None:
    made = limiter.bucket("api", 10, "minute", wait_timeout=2)
    assert (made.limit, made.wait_timeout, made._interval_ms) == (10, 2.0, 60_000)
    assert limiter.window("sms", 3, 0.25)._interval_ms == 250
    assert limiter.concurrent("db", 2, lock_timeout=1.5)._interval_ms == 1500


@pytest.mark.usefixtures("fake_without_redis")
def test_intervals_in_any_case_and_timedeltas_are_taken() -> None:
    # perform_in takes a timedelta, and "Minute" is the same word as "minute".
    assert limiter.bucket("api-case", 10, "Minute")._interval_ms == 60_000
    assert limiter.window("sms-case", 3, " HOUR ")._interval_ms == 3_600_000
    made = limiter.window("td", 3, timedelta(minutes=2), wait_timeout=timedelta(seconds=5))
    assert (made._interval_ms, made.wait_timeout) == (120_000, 5.0)
    assert limiter.concurrent("td-c", 2, lock_timeout=timedelta(seconds=90))._interval_ms == 90_000
    with pytest.raises(ValueError, match=r"got -1\.0"):
        limiter.concurrent("td-bad", 2, lock_timeout=timedelta(seconds=-1))


@pytest.mark.usefixtures("fake_without_redis")
def test_in_the_testing_modes_a_limiter_lets_calls_through_without_redis() -> None:
    """What a unit test checks is the job, not the limit; nothing reaches Redis (there is
    none to reach here)."""
    import asyncio

    slot = limiter.concurrent("fake-slot", 1)
    with slot:  # a concurrent limit of 1, taken by two blocks one after the other
        pass
    with slot:
        pass

    async def in_async_code() -> None:
        async with limiter.window("fake-window", 1, "second"):
            pass

    asyncio.run(in_async_code())
