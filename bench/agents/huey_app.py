"""Huey: the bench task and its pusher.

Worker: ``huey_consumer bench.agents.huey_app.huey -w 10 -k thread -q`` (-q: WARNING).
Huey has no batch push (enqueueing a group loops), so bulk is a loop of calls.
"""

from __future__ import annotations

import os
import time

from huey import RedisHuey

from bench.agents import common

huey = RedisHuey(common.QUEUE, url=os.environ.get(common.REDIS_URL_ENV))


@huey.task(name="bench.noop")
def noop(i: int, pushed_at: float | None = None) -> None:
    started = time.time()
    common.record(pushed_at, started)


def push_one(i: int, pushed_at: float | None) -> None:
    if pushed_at is None:
        noop(i)
    else:
        noop(i, pushed_at)
