"""RQ: the bench job and its pusher.

Worker: ``rq worker --worker-class rq.worker.SimpleWorker --logging_level WARNING default``.
SimpleWorker runs one job at a time in the worker process itself (RQ's default Worker forks
a child per job, slower still); RQ has no threaded worker, so RQ runs at concurrency 1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from redis import Redis
from rq import Queue

from bench.agents import common

_queue: Queue | None = None


def noop(i: int, pushed_at: float | None = None) -> None:
    started = time.time()
    common.record(pushed_at, started)


def queue() -> Queue:
    global _queue
    if _queue is None:
        _queue = Queue(common.QUEUE, connection=Redis.from_url(os.environ[common.REDIS_URL_ENV]))
    return _queue


def push_one(i: int, pushed_at: float | None) -> None:
    if pushed_at is None:
        queue().enqueue(noop, i)
    else:
        queue().enqueue(noop, i, pushed_at)


def push_many(ids: Sequence[int]) -> None:
    queue().enqueue_many([Queue.prepare_data(noop, (i,)) for i in ids])
