"""arq's side of bench/async_bench.py: the async bench coroutines, a worker, a pusher.

    python -m bench.agents.arq_async worker --max-jobs 100
    python -m bench.agents.arq_async push --kind sleep --count 20000

The worker is arq.run_worker with arq's defaults except max_jobs (and logging at WARNING:
arq's CLI logs a line per job and has no flag for less). The jobs are common.async_work, the
same code Sidequest's async bench jobs run. arq has no batch push: the pusher awaits
enqueue_job calls, a chunk of them at once, before the worker starts (not timed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from arq import create_pool, run_worker
from arq.connections import RedisSettings

from bench.agents import common

CHUNK = 100  # enqueue_job calls awaited together while pushing


async def sleep(ctx: dict[str, Any], i: int) -> None:
    await common.async_work("sleep")


async def incr(ctx: dict[str, Any], i: int) -> None:
    await common.async_work("incr")


def settings() -> RedisSettings:
    return RedisSettings.from_dsn(os.environ[common.REDIS_URL_ENV])


async def push(kind: str, count: int) -> None:
    pool = await create_pool(settings())
    try:
        for start in range(0, count, CHUNK):
            await asyncio.gather(*(pool.enqueue_job(kind, i)
                                   for i in range(start, min(start + CHUNK, count))))
    finally:
        await pool.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="arq's async bench worker and pusher")
    sub = parser.add_subparsers(dest="mode", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("--max-jobs", type=int, required=True)
    worker.add_argument("--poll-delay", type=float, help="seconds (arq's default: 0.5)")
    cmd = sub.add_parser("push")
    cmd.add_argument("--kind", choices=common.ASYNC_KINDS, required=True)
    cmd.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    if args.mode == "push":
        started = time.perf_counter()
        asyncio.run(push(args.kind, args.count))
        common.emit(time.perf_counter() - started, args.count)
        return
    logging.basicConfig(level=logging.WARNING)
    options: dict[str, Any] = {"functions": [sleep, incr], "max_jobs": args.max_jobs}
    if args.poll_delay is not None:
        options["poll_delay"] = args.poll_delay
    run_worker(options, redis_settings=settings())


if __name__ == "__main__":
    main()
