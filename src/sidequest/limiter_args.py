"""Checking a limiter's arguments when it is made (limiter.py): its name, its limit, and its
durations (an interval, ``lock_timeout``, ``wait_timeout``) as seconds. Bad ones are refused
then, with an error naming the limiter, the argument and what would do, before anything
touches Redis. Apart from limiter.py, which takes and gives back slots: these rules need
neither Redis nor a limiter, and read in one place.
"""

from __future__ import annotations

import difflib
import math
from datetime import timedelta

INTERVALS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def seconds(name: str, interval: float | str | timedelta) -> float:
    if isinstance(interval, str):
        spoken = interval.strip().lower()  # "Minute", "HOUR": the word is what counts
        if spoken not in INTERVALS:
            close = difflib.get_close_matches(spoken, INTERVALS, 1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"limiter {name!r}: interval {interval!r}: {hint}use one of "
                             f"{', '.join(INTERVALS)} or a number of seconds")
        return INTERVALS[spoken]
    return duration(name, "interval", interval, zero=False)


def duration(name: str, what: str, value: object, zero: bool) -> float:
    """A finite number of seconds (above 0, or from 0 when ``zero``), else a clear error. A
    ``timedelta`` counts as its seconds, as ``perform_in`` takes one."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0 or (value == 0 and not zero)):
        least = ">= 0" if zero else "above 0"
        raise ValueError(f"limiter {name!r}: {what} must be a finite number of seconds {least}, "
                         f"got {value!r}")
    return float(value)


def check(name: str, limit: int) -> None:
    if not isinstance(name, str) or not name or "|" in name:
        raise ValueError(f"a limiter needs a non-empty name without '|', got {name!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limiter {name!r}: the limit must be a whole number >= 1, got "
                         f"{limit!r}")
