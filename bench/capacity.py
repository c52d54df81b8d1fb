#!/usr/bin/env python3
"""Redis CPU per job, operation by operation: the figures behind docs/scaling.md.

    .venv/bin/python bench/capacity.py               # 20,000 jobs per operation, 3 runs
    .venv/bin/python bench/capacity.py -n 5000 --runs 1

Against a private redis-server, it reads the server's CPU time (INFO cpu, user + system) before
and after each operation and divides by the jobs. The jobs count themselves on a second
Redis, so the measured server does only Sidequest's work:

  push          perform_async, one job per call
  bulk push     perform_bulk, 1,000 jobs a call
  run           one worker process (-c 10) fetching, running and acknowledging the jobs, with
                its heartbeats, stats and scheduler polls
  retry         a job that fails once and is retried at once: its first run, the failure's
                write to the retry set, the scheduler's move back and the second run
  scheduled     perform_in, one job per call: the write to the schedule, the scheduler's
                move to the queue, the run

It prints the median microseconds of Redis CPU per job and the jobs per second one Redis core
sustains at that cost, with the CPU model: the capacity model is their sum for a workload.

    .venv/bin/python bench/capacity.py --shards 2

then also spreads the same jobs over two measured Redis servers (bench/shard_capacity.py) and
prints each shard's CPU per job beside the single-Redis figure, with their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import redis  # noqa: E402

from bench.harness import (  # noqa: E402
    PrivateRedis,
    at_least,
    counter_of,
    cpu_model,
    kill_group,
    terminate_all,
    wait_count,
)
from bench.jobs import COUNTER_URL_ENV, DONE_KEY, FailsOnce, Noop  # noqa: E402
from bench.shard_capacity import TOLERANCE, ShardedBench  # noqa: E402

OPERATIONS = ("push", "bulk push", "run", "retry", "scheduled")
#: The worker's timers for the bench: a scheduler that polls often, so that retried and
#: scheduled jobs move at once rather than after Sidekiq's 5 s average poll.
WORKER_TOML = "poll_interval = 0.2\ninitial_poll_wait = 0\n"


def redis_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measured(client: redis.Redis, work: Callable[[], None]) -> float:
    """Seconds of Redis CPU that ``work()`` cost."""
    before = redis_cpu(client)
    work()
    return redis_cpu(client) - before


class Bench:
    def __init__(self, server: PrivateRedis, tally: PrivateRedis, logs: Path) -> None:
        self.server, self.tally, self.logs = server, tally, logs
        self.client = server.client(0)
        self.counter = tally.client(0)
        self.config = logs / "worker.toml"
        self.config.write_text(WORKER_TOML)

    def reset(self) -> None:
        self.client.flushall()
        self.counter.flushall()

    def push(self, jobs: int) -> float:
        return measured(self.client, lambda: [Noop.perform_async(i) for i in range(jobs)])

    def bulk_push(self, jobs: int) -> float:
        return measured(self.client, lambda: Noop.perform_bulk([[i] for i in range(jobs)]))

    def run(self, jobs: int, name: str) -> float:
        """Redis CPU of a worker started on the pushed jobs until ``jobs`` completed."""
        env = {**os.environ, "REDIS_URL": self.server.url(0), COUNTER_URL_ENV: self.tally.url(0),
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
        env.pop("SIDEQUEST_REDIS_URL", None)
        before = redis_cpu(self.client)
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sidequest", "-r", "bench.jobs", "-c", "10",
                 "--log-level", "WARNING", "-C", str(self.config)], cwd=ROOT, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_count(counter_of(self.counter, DONE_KEY), jobs, proc)
            spent = redis_cpu(self.client) - before
        finally:
            terminate_all([proc], 30)
            kill_group(proc)
        return spent

    def sample(self, operation: str, jobs: int) -> float:
        """Redis CPU microseconds per job of one operation."""
        self.reset()
        if operation == "push":
            spent = self.push(jobs)
        elif operation == "bulk push":
            spent = self.bulk_push(jobs)
        elif operation == "run":
            self.bulk_push(jobs)
            spent = self.run(jobs, "run")
        elif operation == "retry":
            FailsOnce.perform_bulk([[i] for i in range(jobs)])
            spent = self.run(jobs, "retry")
        else:
            spent = measured(self.client, lambda: [Noop.perform_in(1, i) for i in range(jobs)])
            spent += self.run(jobs, "scheduled")
        return spent / jobs * 1e6


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("-n", "--jobs", type=at_least(100), default=20_000,
                   help="jobs per operation (20,000)")
    p.add_argument("--runs", type=at_least(1), default=3, help="runs; medians (3)")
    p.add_argument("--shards", type=int, choices=(1, 2), default=1,
                   help="2: also measure each shard's cost with the jobs on two Redis servers")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    executable = shutil.which("redis-server")
    if executable is None:
        print("redis-server is missing: apt-get install redis-server", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sq-capacity-") as tmp:
        base = Path(tmp)
        (base / "a").mkdir()
        (base / "b").mkdir()
        with PrivateRedis(executable, base / "a") as server, \
                PrivateRedis(executable, base / "b") as tally:
            os.environ["REDIS_URL"] = server.url(0)
            os.environ.pop("SIDEQUEST_REDIS_URL", None)
            bench = Bench(server, tally, base)
            results: dict[str, list[float]] = {op: [] for op in OPERATIONS}
            for run in range(opts.runs):
                for operation in OPERATIONS:
                    results[operation].append(bench.sample(operation, opts.jobs))
                    print(f"run {run + 1}: {operation}: {results[operation][-1]:.1f} us",
                          file=sys.stderr)
            print(f"Redis CPU per job, {opts.jobs:,} jobs per operation, median of "
                  f"{opts.runs}; {cpu_model()}, redis-server {server.version()}")
            print(f"{'operation':<12} {'us/job':>8} {'jobs/s per Redis core':>22}")
            for operation in OPERATIONS:
                us = statistics.median(results[operation])
                print(f"{operation:<12} {us:8.1f} {1e6 / us:22,.0f}")
            if opts.shards == 2:
                (base / "c").mkdir()
                with PrivateRedis(executable, base / "c") as other:
                    sharded = ShardedBench([server, other], tally, base, bench.config)
                    _compare(sharded, results, opts)
    return 0


def _compare(sharded: ShardedBench, single: dict[str, list[float]],
             opts: argparse.Namespace) -> None:
    per_shard: dict[str, list[list[float]]] = {op: [] for op in OPERATIONS}
    for run in range(opts.runs):
        for operation in OPERATIONS:
            per_shard[operation].append(sharded.sample(operation, opts.jobs))
            print(f"run {run + 1}: sharded {operation}: "
                  f"{', '.join(f'{us:.1f}' for us in per_shard[operation][-1])} us",
                  file=sys.stderr)
    print(f"\nThe same jobs on 2 shards (half each), us of Redis CPU per job, median of "
          f"{opts.runs}; ratio = shard / single Redis")
    print(f"{'operation':<12} {'single':>8} {'shard 1':>8} {'shard 2':>8} {'ratio 1':>8} "
          f"{'ratio 2':>8}  within {TOLERANCE:.0%}")
    for operation in OPERATIONS:
        one = statistics.median(single[operation])
        shards = [statistics.median(r[i] for r in per_shard[operation]) for i in range(2)]
        ratios = [us / one for us in shards]
        ok = all(abs(ratio - 1) <= TOLERANCE for ratio in ratios)
        print(f"{operation:<12} {one:8.1f} {shards[0]:8.1f} {shards[1]:8.1f} "
              f"{ratios[0]:8.2f} {ratios[1]:8.2f}  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
