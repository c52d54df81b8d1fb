"""The worker's wall clock, set to Redis's.

Scheduled jobs fire and retries come due by the time in Redis scores, and many machines
write those scores: a worker whose clock is ten minutes fast would otherwise run scheduled
jobs ten minutes early. The heartbeat measures Redis's clock (TIME, corrected by half the
round trip) against ours on every beat, and every time the worker writes or compares with a
score comes from ``now()``. Deadlines inside the process use the monotonic clock instead.
"""

from __future__ import annotations

import time
from typing import Any

_offset = 0.0


def now() -> float:
    """Epoch seconds by Redis's clock (ours until the first heartbeat measured it)."""
    return time.time() + _offset


def measure(client: Any) -> float:
    """Read Redis's clock; returns the round trip in seconds (the heartbeat reports it)."""
    global _offset
    sent = time.time()
    started = time.perf_counter()
    seconds, micros = client.time()
    rtt = time.perf_counter() - started
    _offset = (seconds + micros / 1e6) - (sent + rtt / 2)
    return rtt
