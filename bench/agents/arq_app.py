"""arq: the bench coroutine, its worker settings and its pusher.

Worker: ``python -m bench.agents.arq_app`` (arq.run_worker with max_jobs=10), since arq's CLI
logs at INFO (a line per job) and has no flag for WARNING. arq has no batch push: a loop.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from arq import create_pool, run_worker
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import Redis

from bench.agents import common

_pool: ArqRedis | None = None


async def noop(ctx: dict[str, Any], i: int, pushed_at: float | None = None) -> None:
    started = time.time()
    client: Redis = ctx["counter"]
    if pushed_at is not None:
        await client.rpush(common.LATENCY_KEY, common.latency_entry(pushed_at, started))
    await client.incr(common.DONE_KEY)


async def startup(ctx: dict[str, Any]) -> None:
    ctx["counter"] = Redis.from_url(common.counter_url())


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["counter"].aclose()


def settings() -> RedisSettings:
    return RedisSettings.from_dsn(os.environ[common.REDIS_URL_ENV])


class WorkerSettings:
    functions = [noop]
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 10


async def push_one(i: int, pushed_at: float | None) -> None:
    global _pool
    if _pool is None:
        _pool = await create_pool(settings())
    args = (i,) if pushed_at is None else (i, pushed_at)
    await _pool.enqueue_job("noop", *args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run_worker(WorkerSettings, redis_settings=settings())
