"""Celery: the bench task and its pusher.

Worker: ``celery -A bench.agents.celery_app worker --pool threads|prefork -c 10 -l WARNING``.
No result backend, as a Sidekiq-style job returns nothing and the others store nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from celery import Celery

from bench.agents import common

app = Celery("bench", broker=os.environ.get(common.REDIS_URL_ENV))
app.conf.update(
    task_default_queue=common.QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,  # silences a deprecation warning at start
)


@app.task(name="bench.noop")
def noop(i: int, pushed_at: float | None = None) -> None:
    started = time.time()
    common.record(pushed_at, started)


def push_one(i: int, pushed_at: float | None) -> None:
    noop.apply_async((i,) if pushed_at is None else (i, pushed_at))


def push_many(ids: Sequence[int]) -> None:
    # Celery has no batch push: group().apply_async() publishes one message at a time too.
    # Holding one producer for the batch is the fastest of the two (about 10% here).
    with app.producer_or_acquire() as producer:
        for i in ids:
            noop.apply_async((i,), producer=producer)
