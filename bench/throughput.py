#!/usr/bin/env python3
"""Throughput bench: how fast jobs are enqueued, and how fast ONE worker process drains them.

    .venv/bin/python bench/throughput.py                             # 100,000 jobs, 3 runs
    .venv/bin/python bench/throughput.py --log-level INFO --runs 1   # cost of per-job logging
    .venv/bin/python bench/throughput.py --quick                     # 5,000 jobs, 1 run (tests)

Everything runs against a private redis-server on a free loopback port (never 6379) in a
temporary directory, started here and stopped at the end, Ctrl-C included. Completions are
counted by the job itself in database 1 (bench/jobs.py), not taken from Sidequest's stats.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

import redis

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ on sys.path, not the repo root that holds the `bench`
# package; src/ too, so that the bench runs even without the editable install.
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sidequest  # noqa: E402
from bench.harness import (  # noqa: E402
    MB,
    BenchError,
    Drain,
    PrivateRedis,
    RssSampler,
    at_least,
    counter_of,
    hiredis_text,
    log_tail,
    machine_text,
    progress,
    rate,
    terminate,
    wait_count,
)
from bench.jobs import COUNTER_URL_ENV, DONE_KEY, Noop  # noqa: E402
from sidequest import keys  # noqa: E402

QUEUE = "default"
SINGLE_MAX = 20_000  # single pushes are ~10x slower than bulk; this keeps a run short
ACK_WAIT = 5.0  # acks of the last jobs are flushed by the fetcher a moment after they finish
STOP_WAIT = 40.0  # the worker's own shutdown timeout (25 s) plus its hard-exit margin

# -- the machine ---------------------------------------------------------------------------


def machine_lines(server: PrivateRedis) -> list[str]:
    return [
        f"machine   {machine_text()}",
        f"python    {platform.python_version()} ({sys.executable})",
        f"redis     redis-server {server.version()}, redis-py {metadata.version('redis')},"
        f" {hiredis_text()}",
        f"sidequest {sidequest.__version__}",
    ]


# -- enqueueing ----------------------------------------------------------------------------


def time_single(count: int) -> float:
    """One round trip per job: what a web request calling perform_async pays."""
    start = time.perf_counter()
    for i in range(count):
        Noop.perform_async(i)
    return rate(count, time.perf_counter() - start)


def time_bulk(count: int, batch: int) -> float:
    args = [[i] for i in range(count)]  # built outside the clock: the caller has them already
    start = time.perf_counter()
    Noop.perform_bulk(args, batch_size=batch)
    return rate(count, time.perf_counter() - start)


# -- the worker ----------------------------------------------------------------------------


def start_worker(server: PrivateRedis, concurrency: int, level: str,
                 log: IO[bytes], processes: int = 1,
                 *, queues: Sequence[str] = (QUEUE,)) -> subprocess.Popen[bytes]:
    """``sidequest -r bench.jobs`` on the private Redis; several queues are strict order."""
    env = dict(os.environ)
    env.pop("SIDEQUEST_REDIS_URL", None)  # it wins over REDIS_URL and may name a real server
    env["REDIS_URL"] = server.url(0)
    env[COUNTER_URL_ENV] = server.url(1)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH")) if p
    )
    command = [sys.executable, "-m", "sidequest", "-r", "bench.jobs", "-c", str(concurrency),
               "-P", str(processes), "--log-level", level]
    for queue in queues:
        command += ["-q", queue]
    # Logs go to a file, as in production, rather than a pipe we would have to keep reading.
    return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@dataclass(frozen=True)
class Acks:
    """What is left in Redis after the drain; all zero means every job was acknowledged."""

    queued: int
    in_progress: int
    retry: int
    dead: int
    done: int
    jobs: int

    @property
    def ok(self) -> bool:
        clean = self.queued == self.in_progress == self.retry == self.dead == 0
        return clean and self.done == self.jobs  # more would mean a job ran twice

    def text(self) -> str:
        return (f"queue {self.queued}, sq:inprogress:* {self.in_progress}, retry {self.retry},"
                f" dead {self.dead}, completions {self.done:,} of {self.jobs:,}")


def leftovers(sq: redis.Redis, counter: redis.Redis, jobs: int) -> Acks:
    in_progress = sum(int(sq.llen(key)) for key in sq.scan_iter(keys.inprogress("*")))
    return Acks(queued=int(sq.llen(keys.queue(QUEUE))), in_progress=in_progress,
                retry=int(sq.zcard(keys.RETRY)), dead=int(sq.zcard(keys.DEAD)),
                done=int(counter.get(DONE_KEY) or 0), jobs=jobs)


def check_acks(sq: redis.Redis, counter: redis.Redis, jobs: int) -> Acks:
    """Wait briefly for the last batch of acks (sent on the fetcher's next round trip)."""
    deadline = time.monotonic() + ACK_WAIT
    while True:
        acks = leftovers(sq, counter, jobs)
        if acks.ok or time.monotonic() > deadline:
            return acks
        time.sleep(0.01)


# -- one run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    jobs: int
    concurrency: int
    runs: int
    log_level: str
    batch: int
    check: bool
    processes: int = 1

    @property
    def single(self) -> int:
        return min(self.jobs, SINGLE_MAX)


@dataclass(frozen=True)
class RunResult:
    bulk: float
    single: float
    drain: float
    rss_mb: float
    acks: Acks
    worker_exit: int


def run_once(server: PrivateRedis, opts: Options, workdir: Path, index: int) -> RunResult:
    with server.client(0) as sq, server.client(1) as counter:
        sq.flushall()  # every database: the queue, Sidequest's keys and the counter
        progress(f"run {index}/{opts.runs}: {opts.single:,} single pushes")
        single = time_single(opts.single)
        sq.delete(keys.queue(QUEUE))  # only the bulk-enqueued jobs are drained
        progress(f", bulk enqueue of {opts.jobs:,}")
        bulk = time_bulk(opts.jobs, opts.batch)
        if sq.llen(keys.queue(QUEUE)) != opts.jobs:
            raise BenchError(f"queue:{QUEUE} does not hold the {opts.jobs:,} jobs just pushed")
        progress(", draining")
        drain, rss, acks, code = drain_with_worker(server, opts, sq, counter,
                                                   workdir / f"worker-{index}.log")
    progress(f": {drain.rate:,.0f} jobs/s\n")
    return RunResult(bulk, single, drain.rate, rss / MB, acks, code)


def drain_with_worker(server: PrivateRedis, opts: Options, sq: redis.Redis,
                      counter: redis.Redis, log_path: Path) -> tuple[Drain, int, Acks, int]:
    """Start one worker, time the drain, check the leftovers, stop it with SIGTERM."""
    with open(log_path, "wb") as log:
        worker = start_worker(server, opts.concurrency, opts.log_level, log, opts.processes)
        try:
            with RssSampler(worker.pid) as sampler:
                drain = wait_count(counter_of(counter, DONE_KEY), opts.jobs, worker)
            acks = check_acks(sq, counter, opts.jobs)
        except BenchError as exc:
            left = leftovers(sq, counter, opts.jobs).text()
            tail = log_tail(log_path)
            header = f"--- worker log ({log_path.name}) ---"
            raise BenchError(f"{exc}\n{left}\n{header}\n{tail}") from None
        finally:
            code = terminate(worker, STOP_WAIT)
    return drain, sampler.peak, acks, code


# -- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    label: str
    value: Callable[[RunResult], float]
    floor: float | None = None
    higher_is_better: bool = True
    decimals: int = 0

    def fmt(self, value: float) -> str:
        return f"{value:,.{self.decimals}f}"

    def floor_text(self) -> str:
        if self.floor is None:
            return "-"
        return (">= " if self.higher_is_better else "< ") + f"{self.floor:,g}"

    def verdict(self, value: float) -> str:
        if self.floor is None:
            return "-"
        ok = value >= self.floor if self.higher_is_better else value < self.floor
        return "PASS" if ok else "FAIL"


# The floor the project holds itself to, on one worker process with default settings.
FIGURES = (
    Figure("bulk enqueue jobs/s", lambda r: r.bulk, floor=50_000),
    Figure("single enqueue jobs/s", lambda r: r.single),
    Figure("drain jobs/s", lambda r: r.drain, floor=6_000),
    Figure("peak RSS MB", lambda r: r.rss_mb, floor=60, higher_is_better=False, decimals=1),
)


def table(results: Sequence[RunResult]) -> tuple[list[str], bool]:
    """The figures per run and their median; True when every floor passes on the median."""
    runs = [f"run {i}" for i in range(1, len(results) + 1)]
    head = ["figure".ljust(22), *(r.rjust(10) for r in runs), "median".rjust(10),
            "floor".rjust(11), "  result"]
    lines, passed = ["".join(head)], True
    for fig in FIGURES:
        values = [fig.value(r) for r in results]
        median = statistics.median(values)
        verdict = fig.verdict(median)
        passed = passed and verdict != "FAIL"
        cells = [fig.label.ljust(22), *(fig.fmt(v).rjust(10) for v in values),
                 fig.fmt(median).rjust(10), fig.floor_text().rjust(11), f"  {verdict}"]
        lines.append("".join(cells))
    return lines, passed


def ack_lines(results: Sequence[RunResult]) -> tuple[list[str], bool]:
    bad = [(i, r) for i, r in enumerate(results, 1) if not r.acks.ok]
    if bad:
        detail = "; ".join(f"run {i}: {r.acks.text()}" for i, r in bad)
        ack = f"all acknowledged: NO ({detail})"
    else:
        ack = f"all acknowledged: yes (every run: {results[0].acks.text()})"
    codes = [r.worker_exit for r in results]
    clean = all(code == 0 for code in codes)
    stop = ("worker stopped cleanly: " + ("yes" if clean else "NO")
            + f" (exit codes after SIGTERM: {', '.join(map(str, codes))})")
    return [ack, stop], not bad and clean


def report(machine: list[str], opts: Options, results: Sequence[RunResult]) -> int:
    runs = f"{opts.runs} run" + ("s" if opts.runs > 1 else "")
    setup = (f"setup     {opts.jobs:,} jobs, -P {opts.processes} (worker processes),"
             f" concurrency {opts.concurrency},"
             f" worker log level {opts.log_level}, {runs}, bulk batch {opts.batch:,},"
             f" {opts.single:,} single pushes")
    rows, floors_ok = table(results)
    checks, correct = ack_lines(results)
    verdict = "all PASS" if floors_ok else "FAIL"
    note = "--check: a FAIL exits 1" if opts.check else "informational; --check makes a FAIL exit 1"
    print("\n".join(["Sidequest throughput bench", *machine, setup, "", *rows, "", *checks,
                     f"floors: {verdict} on the median ({note}); MB = 2^20 bytes, worker tree"]))
    if not correct:
        return 1  # lost, unacknowledged or doubled jobs are a bug, not a slow machine
    return 1 if opts.check and not floors_ok else 0


# -- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--jobs", type=at_least(100), help="jobs per run (100000)")
    parser.add_argument("-c", "--concurrency", type=at_least(1), default=10,
                        help="worker threads (10)")
    parser.add_argument("-P", "--processes", type=at_least(1), default=1,
                        help="worker processes, sidequest -P (1)")
    parser.add_argument("--runs", type=at_least(1), help="runs; the median is reported (3)")
    parser.add_argument("--log-level", default="WARNING",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="worker log level (WARNING; INFO measures per-job log lines)")
    parser.add_argument("--batch", type=at_least(1), default=1000,
                        help="perform_bulk batch size (1000)")
    parser.add_argument("--quick", action="store_true",
                        help="5,000 jobs and 1 run, for the test suite")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a figure misses the project's floor")
    args = parser.parse_args(argv)
    # --quick only changes the defaults, so `--quick -n 20000` still means 20,000 jobs.
    jobs = args.jobs or (5_000 if args.quick else 100_000)
    runs = args.runs or (1 if args.quick else 3)
    return Options(jobs, args.concurrency, runs, args.log_level, args.batch, args.check,
                   args.processes)


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly as Ctrl-C does


def bench(opts: Options) -> int:
    executable = shutil.which("redis-server")
    if executable is None:
        raise BenchError("redis-server is not installed: run `make redis`")
    with tempfile.TemporaryDirectory(prefix="sidequest-bench-") as tmp, \
            PrivateRedis(executable, Path(tmp)) as server:
        sidequest.configure(server.url(0))  # the bench's own pushes go to the private server
        machine = machine_lines(server)
        results = [run_once(server, opts, Path(tmp), i) for i in range(1, opts.runs + 1)]
        return report(machine, opts, results)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return bench(opts)
    except KeyboardInterrupt:
        progress("\ninterrupted: worker and redis-server stopped\n")
        return 130
    except BenchError as exc:
        progress(f"\nbench failed: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
