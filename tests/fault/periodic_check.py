"""Counting the pushes of tests/apps/periodic_app.py's every-second entry: the queue it fills
is read by no worker, so every push is still there to count."""

from __future__ import annotations

import collections
import json

import redis

from apps.periodic_app import COUNT_QUEUE


def redis_now(r: redis.Redis) -> int:
    return int(r.time()[0])


def check_every_second(r: redis.Redis, start: int, end: int) -> tuple[int, str]:
    """How many ticks in [start, end] were pushed, and a description of every tick pushed
    twice or missing ('' when each was pushed exactly once)."""
    raw = r.lrange("queue:" + COUNT_QUEUE, 0, -1)
    counts = collections.Counter(json.loads(item)["periodic_tick"] for item in raw)
    doubled = {tick: n for tick, n in counts.items() if n > 1}
    missing = [tick for tick in range(start, end + 1) if tick not in counts]
    problems = []
    if doubled:
        problems.append(f"pushed more than once: {doubled}")
    if missing:
        problems.append(f"never pushed: {missing}")
    return sum(1 for t in counts if start <= t <= end), "; ".join(problems)
