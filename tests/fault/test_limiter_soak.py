"""A 10-per-second bucket limiter used by 4 processes x 10 threads for 60 s: every clock
second of Redis's allows exactly 10 calls, so the minute allows 600 (within 1 %), never more
than 10 in one second.

It runs once in `make test`; for a quick run, set SIDEQUEST_LIMITER_SOAK to fewer seconds:

    SIDEQUEST_LIMITER_SOAK=10 .venv/bin/pytest -q tests/fault/test_limiter_soak.py
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from apps.limiter_load import run_load, stamps_of

SECONDS = int(os.environ.get("SIDEQUEST_LIMITER_SOAK", "60"))


@pytest.mark.slow
@pytest.mark.soak  # a minute, mostly waiting: `make test` runs it beside the unit tests
def test_bucket_holds_for_a_minute_under_40_threads(redis_url: str) -> None:
    assert SECONDS >= 5, "SIDEQUEST_LIMITER_SOAK: give at least 5 seconds"
    procs = [run_load(redis_url, "bucket", "soak", 10, 1, 10, SECONDS) for _ in range(4)]
    stamps = stamps_of(procs)
    per_second = Counter(stamp // 1000 for stamp in stamps)
    seconds = max(per_second) - min(per_second) + 1
    print(f"bucket 10/s, 4 processes x 10 threads: {len(stamps)} calls allowed over "
          f"{seconds} Redis seconds, at most {max(per_second.values())} in one")
    assert max(per_second.values()) <= 10
    # The first and last seconds are partial (the processes start and stop inside them).
    full = [per_second[s] for s in range(min(per_second) + 1, max(per_second))]
    assert sum(full) >= 0.99 * 10 * len(full) and len(full) >= SECONDS - 2
    assert len(stamps) >= 0.99 * 10 * (SECONDS - 1)
