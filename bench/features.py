#!/usr/bin/env python3
"""What a limiter acquire and batch bookkeeping cost per job, as ratios to a plain job.

    .venv/bin/python bench/features.py               # 20,000 jobs of each kind, 3 rounds
    .venv/bin/python bench/features.py -n 5000 --runs 1

One worker process (-c 10) drains N bulk-pushed one-INCR jobs of each kind in turn, kinds
interleaved in each round: plain (bench.Noop), inside a never-full bucket limiter
(bench.Limited: one Lua round trip more per job), and members of one batch (bench.Batched:
one batch-update script per job). Prints each kind's median drain rate and worker CPU per job
(bench/cost.py), and their ratios to the plain job, with the CPU model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench import cost  # noqa: E402
from bench.harness import (  # noqa: E402
    PrivateRedis,
    at_least,
    counter_of,
    cpu_model,
    kill_group,
    terminate_all,
    wait_count,
)
from bench.jobs import COUNTER_URL_ENV, DONE_KEY, Batched, Limited, Noop  # noqa: E402

KINDS = ("plain", "limiter", "batch")


def push(kind: str, jobs: int) -> None:
    args = [[i] for i in range(jobs)]
    if kind == "plain":
        Noop.perform_bulk(args)
    elif kind == "limiter":
        Limited.perform_bulk(args)
    else:
        import sidequest

        batch = sidequest.Batch(description="bench")
        with batch.jobs():
            Batched.perform_bulk(args)


def drain(server: PrivateRedis, kind: str, jobs: int, log: Path) -> tuple[float, float]:
    """(jobs/s, worker CPU us per job) of one drain of ``jobs`` jobs of ``kind``."""
    with server.client(0) as client:
        client.flushall()
    push(kind, jobs)
    env = {**os.environ, "REDIS_URL": server.url(0), COUNTER_URL_ENV: server.url(1),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    env.pop("SIDEQUEST_REDIS_URL", None)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sidequest", "-r", "bench.jobs", "-c",
                                 "10", "--log-level", "WARNING"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with server.client(1) as counter, server.client(0) as redis_client:
            marks: list[cost.Usage] = []
            done = wait_count(counter_of(counter, DONE_KEY), jobs, proc,
                              on_first=lambda: marks.append(cost.usage(proc.pid, redis_client)))
            marks.append(cost.usage(proc.pid, redis_client))
    finally:
        terminate_all([proc], 30)
        kill_group(proc)
    per_job = cost.per_job(marks[0], marks[-1], done.jobs - done.first_count)
    return done.rate, per_job.cpu_us


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=at_least(100), default=20_000)
    parser.add_argument("--runs", type=at_least(1), default=3)
    opts = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sidequest-features-"))
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    try:
        with PrivateRedis(shutil.which("redis-server") or "redis-server", workdir) as server:
            import sidequest

            sidequest.configure(redis_url=server.url(0))
            for run in range(opts.runs):
                for kind in KINDS:
                    results[kind].append(drain(server, kind, opts.jobs, workdir / "worker.log"))
                    rate, cpu = results[kind][-1]
                    print(f"run {run + 1}/{opts.runs} {kind}: {rate:,.0f} jobs/s, "
                          f"{cpu:.0f} us CPU/job", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    plain_rate = statistics.median(r for r, _ in results["plain"])
    plain_cpu = statistics.median(c for _, c in results["plain"])
    print(f"\nFeature cost per job ({cpu_model()}; {opts.jobs:,} jobs, -c 10, medians of "
          f"{opts.runs}):")
    for kind in KINDS:
        rate = statistics.median(r for r, _ in results[kind])
        cpu = statistics.median(c for _, c in results[kind])
        print(f"  {kind:8} {rate:9,.0f} jobs/s ({rate / plain_rate:.2f}x)  "
              f"{cpu:5.0f} us CPU/job ({cpu / plain_cpu:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
