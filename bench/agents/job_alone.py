"""``python -m bench.agents.job_alone --count N [--async]``: the bench job's own work, alone.

Runs what every Python system's bench job does (one ``INCR`` on the counter through redis-py,
bench/agents/common.py) N times in a bare loop on one thread, with no job system around it,
and prints one JSON line with the CPU time it took per job. A worker's CPU per drained job,
less this, is what the system itself spends per job: fetching, decoding, dispatching,
acknowledging, and the waits its threads add around the job's own round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.agents import common

#: Calls before timing: the connection is opened, the client's code paths are warm.
WARM_UP = 200


def sync_loop(count: int) -> None:
    for _ in range(count):
        common.record(None, time.time())


async def async_loop(count: int) -> None:
    for _ in range(count):
        await common.async_work("incr")


def _timed(count: int) -> tuple[float, float]:
    """CPU and wall seconds of ``count`` jobs, after a warm-up."""
    sync_loop(WARM_UP)
    cpu, wall = time.process_time(), time.perf_counter()
    sync_loop(count)
    return time.process_time() - cpu, time.perf_counter() - wall


async def _timed_async(count: int) -> tuple[float, float]:
    """The same on one event loop, whose set-up is left out with the warm-up."""
    await async_loop(WARM_UP)
    cpu, wall = time.process_time(), time.perf_counter()
    await async_loop(count)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--async", dest="is_async", action="store_true",
                        help="the async job (redis.asyncio), for systems whose jobs are async")
    opts = parser.parse_args()
    cpu, wall = asyncio.run(_timed_async(opts.count)) if opts.is_async else _timed(opts.count)
    print(json.dumps({"seconds": wall, "count": opts.count,
                      "cpu_us": cpu / opts.count * 1e6}), flush=True)


if __name__ == "__main__":
    main()
