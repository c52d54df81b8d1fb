"""Dramatiq: the bench actor and its pusher.

Worker: ``dramatiq bench.agents.dramatiq_app --processes 1 --threads 10 --skip-logging``;
this module then sets the log level itself (WARNING), as dramatiq's CLI has no flag for it.
Dramatiq has no batch push (group().run() sends one by one too), so bulk is a loop of send().
"""

from __future__ import annotations

import logging
import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.agents import common

if os.environ.get("BENCH_WORKER"):
    logging.basicConfig(level=logging.WARNING)

dramatiq.set_broker(RedisBroker(url=os.environ.get(common.REDIS_URL_ENV)))


@dramatiq.actor(queue_name=common.QUEUE, max_retries=0)
def noop(i: int, pushed_at: float | None = None) -> None:
    started = time.time()
    common.record(pushed_at, started)


def push_one(i: int, pushed_at: float | None) -> None:
    if pushed_at is None:
        noop.send(i)
    else:
        noop.send(i, pushed_at)
