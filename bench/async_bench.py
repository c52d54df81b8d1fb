#!/usr/bin/env python3
"""Async throughput: Sidequest's event loop against arq, on the same I/O-bound jobs.

    .venv/bin/python bench/async_bench.py                  # 20,000 jobs a drain, 3 runs
    .venv/bin/python bench/async_bench.py -n 5000 --runs 5 --concurrency 50
    .venv/bin/python bench/async_bench.py --quick          # tiny: proves the bench works

Both systems run the same coroutine (bench/agents/common.py async_work), of two kinds:
"sleep" awaits asyncio.sleep(0.01) then counts itself, "incr" only counts itself; counting
is one INCR over redis.asyncio on database 1 of the bench's private Redis, apart from the
systems' own keys in database 0. For each kind, in each run, systems alternating (A B A B,
so a noisy minute hurts both alike): N jobs are pushed in bulk (Sidequest: perform_bulk;
arq, which has no batch push: enqueue_job calls, a hundred awaited at once), then ONE worker
process starts and drains them, running --concurrency jobs at once (Sidequest:
--async-concurrency N with its default 5 processor threads; arq: max_jobs=N, its other
settings at their defaults). The rate is jobs/s from the first completion to the last, as
the bench polls the counter; the worker's CPU and the Redis server's CPU per job are
measured over the same window (bench/cost.py). Medians over the runs; the ratios are
Sidequest's figures over arq's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench import cost, install  # noqa: E402
from bench.agents.common import (  # noqa: E402
    ASYNC_KINDS,
    COUNTER_URL_ENV,
    DONE_KEY,
    REDIS_URL_ENV,
)
from bench.harness import (  # noqa: E402
    BenchError,
    PrivateRedis,
    at_least,
    counter_of,
    cpu_model,
    kill_group,
    log_tail,
    progress,
    terminate_all,
    wait_count,
)
from bench.systems import BY_NAME, VENVS  # noqa: E402

SYSTEMS = ("sidequest", "arq")
TARGET = 2.0  # the goal: Sidequest drains async jobs at least this many times arq's rate
STOP_WAIT = 40.0  # Sidequest's shutdown timeout (25 s) plus margin
PUSH_TIMEOUT = 600.0
SETTLE = 0.3  # after a drain: time for a job that would run twice to show up in the count


@dataclass(frozen=True)
class Options:
    jobs: int
    runs: int
    concurrency: int
    kinds: tuple[str, ...]
    systems: tuple[str, ...]
    install: bool
    arq_poll_delay: float | None


@dataclass(frozen=True)
class Sample:
    rate: float  # jobs/s, first completion to last
    cpu_us: float  # the worker's CPU per job over the same window
    redis_us: float  # the Redis server's CPU per job (its own and the counter's work)


def _choices(known: tuple[str, ...], what: str) -> object:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none)'}; known: {', '.join(known)}")
        return names

    return parse


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("-n", "--jobs", type=at_least(100), help="jobs a drain (20000)")
    p.add_argument("--runs", type=at_least(1), help="runs; medians are reported (3)")
    p.add_argument("--concurrency", type=at_least(1), default=100,
                   help="async jobs at once: Sidequest's --async-concurrency, arq's max_jobs"
                        " (100)")
    p.add_argument("--kinds", type=_choices(ASYNC_KINDS, "kind"), default=ASYNC_KINDS,
                   help=f"comma list of job kinds ({','.join(ASYNC_KINDS)})")
    p.add_argument("--systems", type=_choices(SYSTEMS, "system"), default=SYSTEMS,
                   help="comma list (sidequest,arq); the ratio needs both")
    p.add_argument("--arq-poll-delay", type=float, metavar="SECONDS",
                   help="arq's poll_delay (its default, 0.5 s, unless given)")
    p.add_argument("--quick", action="store_true",
                   help="300 jobs, 1 run, no install: proves the bench works")
    p.add_argument("--skip-install", action="store_true",
                   help="use bench/.venvs/arq as it is")
    args = p.parse_args(argv)
    return Options(jobs=args.jobs or (300 if args.quick else 20_000),
                   runs=args.runs or (1 if args.quick else 3),
                   concurrency=args.concurrency, kinds=args.kinds, systems=args.systems,
                   install=not (args.quick or args.skip_install),
                   arq_poll_delay=args.arq_poll_delay)


# -- one drain -----------------------------------------------------------------------------

ARQ = BY_NAME["arq"]
JOB_CLASS = {"sleep": "AsyncSleep", "incr": "AsyncIncr"}


def arq_python() -> Path:
    return VENVS / str(ARQ.venv) / "bin" / "python"


def env(server: PrivateRedis) -> dict[str, str]:
    out = dict(os.environ)
    out.pop("SIDEQUEST_REDIS_URL", None)  # it wins over REDIS_URL and may name a real one
    out.pop("VIRTUAL_ENV", None)
    out.update({"REDIS_URL": server.url(0), REDIS_URL_ENV: server.url(0),
                COUNTER_URL_ENV: server.url(1),
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])})
    return out


def worker_command(system: str, opts: Options) -> list[str]:
    if system == "sidequest":
        return [sys.executable, "-m", "sidequest", "-r", "bench.jobs",
                "--async-concurrency", str(opts.concurrency), "--log-level", "WARNING",
                "-q", "default"]
    delay = [] if opts.arq_poll_delay is None else ["--poll-delay", str(opts.arq_poll_delay)]
    return [str(arq_python()), "-m", "bench.agents.arq_async", "worker", "--max-jobs",
            str(opts.concurrency), *delay]


def push(server: PrivateRedis, system: str, kind: str, jobs: int) -> None:
    if system == "sidequest":
        from bench import jobs as bench_jobs

        getattr(bench_jobs, JOB_CLASS[kind]).perform_bulk([[i] for i in range(jobs)])
        return
    command = [str(arq_python()), "-m", "bench.agents.arq_async", "push", "--kind", kind,
               "--count", str(jobs)]
    try:
        done = subprocess.run(command, cwd=ROOT, env=env(server), capture_output=True,
                              text=True, timeout=PUSH_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(command)} took over {PUSH_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise BenchError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")


def drain(server: PrivateRedis, system: str, kind: str, opts: Options, log: Path) -> Sample:
    """Push ``opts.jobs`` jobs of ``kind``, then one worker of ``system`` drains them."""
    with server.client(0) as client:
        client.flushall()  # every database: the systems' keys and the counter
    push(server, system, kind, opts.jobs)
    with open(log, "ab") as out:
        proc = subprocess.Popen(worker_command(system, opts), cwd=ROOT, env=env(server),
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with server.client(1) as counter, server.client(0) as redis_client:
            marks: list[cost.Usage] = []
            done = wait_count(counter_of(counter, DONE_KEY), opts.jobs, proc,
                              on_first=lambda: marks.append(cost.usage(proc.pid, redis_client)))
            marks.append(cost.usage(proc.pid, redis_client))
            time.sleep(SETTLE)
            count = int(counter.get(DONE_KEY) or 0)
            if count != opts.jobs:
                raise BenchError(f"{count:,} completions for {opts.jobs:,} {system} jobs:"
                                 " some job ran twice")
    except BenchError as exc:
        raise BenchError(f"{exc}\n--- {log.name} ---\n{log_tail(log)}") from None
    finally:
        terminate_all([proc], STOP_WAIT)
        kill_group(proc)
    per_job = cost.per_job(marks[0], marks[-1], done.jobs - done.first_count)
    return Sample(done.rate, per_job.cpu_us, per_job.redis_us)


# -- the report ----------------------------------------------------------------------------


def medians(samples: list[Sample]) -> Sample:
    return Sample(statistics.median(s.rate for s in samples),
                  statistics.median(s.cpu_us for s in samples),
                  statistics.median(s.redis_us for s in samples))


def report_text(opts: Options, results: dict[tuple[str, str], list[Sample]]) -> str:
    lines = [f"Async drain ({cpu_model()}; {opts.jobs:,} jobs a drain, one worker process,"
             f" {opts.concurrency} jobs at once, medians of {opts.runs} run(s), first"
             " completion to last):",
             f"  {'kind':6} {'system':10} {'jobs/s':>9} {'CPU us/job':>11}"
             f" {'Redis us/job':>13}"]
    ratios: dict[str, float] = {}
    for kind in opts.kinds:
        found = {s: medians(results[(s, kind)]) for s in opts.systems}
        for system, sample in found.items():
            lines.append(f"  {kind:6} {system:10} {sample.rate:9,.0f} {sample.cpu_us:11.0f}"
                         f" {sample.redis_us:13.0f}")
        if len(found) == 2:
            ratios[kind] = found["sidequest"].rate / found["arq"].rate
            sq, arq = found["sidequest"], found["arq"]
            lines.append(f"  {kind:6} {'ratio':10} {ratios[kind]:8.2f}x"
                         f" {sq.cpu_us / arq.cpu_us:10.2f}x {sq.redis_us / arq.redis_us:12.2f}x")
    if len(ratios) == len(opts.kinds):
        met = all(r >= TARGET for r in ratios.values())
        each = ", ".join(f"{kind} {r:.2f}x" for kind, r in ratios.items())
        lines.append(f'target "async drain: at least {TARGET:g}x arq": '
                     f"{'met' if met else 'not met'} on this machine ({each})")
    return "\n".join(lines)


def run_all(opts: Options, server: PrivateRedis, logs: Path) -> dict[tuple[str, str],
                                                                      list[Sample]]:
    import sidequest

    sidequest.configure(redis_url=server.url(0))
    results: dict[tuple[str, str], list[Sample]] = {
        (s, k): [] for s in opts.systems for k in opts.kinds}
    for run in range(1, opts.runs + 1):
        # A B A B: the order flips each run, so neither system always follows the other.
        order = opts.systems if run % 2 else tuple(reversed(opts.systems))
        for kind in opts.kinds:
            for system in order:
                sample = drain(server, system, kind, opts, logs / f"{system}-{kind}.log")
                results[(system, kind)].append(sample)
                progress(f"run {run}/{opts.runs} {kind} {system}: {sample.rate:,.0f} jobs/s,"
                         f" {sample.cpu_us:.0f} us CPU/job, Redis {sample.redis_us:.0f} us/job\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if "arq" in opts.systems:
        if opts.install:
            install.ensure_venv(str(ARQ.venv), ARQ.requirements)
        elif not arq_python().exists():
            progress(f"arq is not installed in {VENVS / str(ARQ.venv)}: run without --quick"
                     " or --skip-install, or give --systems sidequest\n")
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="sidequest-async-bench-"))
    try:
        with PrivateRedis(shutil.which("redis-server") or "redis-server", workdir) as server:
            results = run_all(opts, server, workdir)
    except BenchError as exc:
        progress(f"\nbench failed: {exc}\n")
        return 2
    except KeyboardInterrupt:
        progress("\ninterrupted: worker and redis-server stopped\n")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report_text(opts, results))
    if "arq" in opts.systems:
        print(f"arq: {install.versions(ARQ)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
