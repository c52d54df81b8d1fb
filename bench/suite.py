#!/usr/bin/env python3
"""Sidequest against Ruby Sidekiq and the Python job systems, same machine, same Redis.

    .venv/bin/python bench/suite.py                        # everything (make bench)
    .venv/bin/python bench/suite.py --systems sidequest,sidekiq --jobs 20000
    .venv/bin/python bench/suite.py --quick                # Sidequest only, small, no docs

For each system, in each run (systems interleaved, so a noisy minute hurts all alike):
  single/bulk enqueue   jobs/s of one-at-a-time pushes, and of the system's bulk API
  drain                 N jobs pushed in bulk, then ONE worker process at 10 jobs at once;
                        jobs/s from the first completion to the last; peak RSS of its tree
  latency               the same worker, idle; jobs pushed one at a time with random gaps;
                        p50/p99 of (start of perform - push time), recorded by the job
  drain +1 ms           the drain again, the worker talking to Redis through a proxy that
                        adds 1 ms each way (bench/latency_proxy.py)
  drain, 2 processes    the drain again with two worker processes of 10 threads (Sidequest's
                        -P 2, two Sidekiq processes); the other systems are not measured
Every job does one INCR on a counter in database 1, outside the system under test. The
figures are medians over the runs; the report gives each system's ratio to Sidequest and,
unless --no-write (or --quick), rewrites docs/performance.md and docs/images/performance.png.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ on sys.path, not the repo root that holds the `bench`
# package; src/ too, so that the bench runs even without the editable install.
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import redis  # noqa: E402

from bench import cost, install, report  # noqa: E402
from bench.agents.common import (  # noqa: E402
    COUNTER_URL_ENV,
    DONE_KEY,
    LATENCY_KEY,
    REDIS_URL_ENV,
)
from bench.harness import (  # noqa: E402
    MB,
    BenchError,
    PrivateRedis,
    RssSampler,
    at_least,
    counter_of,
    kill_group,
    log_tail,
    progress,
    rate,
    terminate,
    terminate_all,
    wait_count,
)
from bench.systems import BY_NAME, System  # noqa: E402

STOP_WAIT = 40.0  # Sidequest's shutdown timeout (25 s) plus margin; the others stop sooner
PUSH_TIMEOUT = 1800.0  # a pusher that takes longer than this is stuck
JOB_ALONE = 5_000  # runs of the job alone (bench/agents/job_alone.py): a second or so
SETTLE = 0.3  # after a drain: time for a job that would run twice to show up in the count


# -- options -------------------------------------------------------------------------------


def _system_list(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown system {', '.join(unknown) or '(none)'}; known: {', '.join(BY_NAME)}")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="systems: " + ", ".join(BY_NAME))
    p.add_argument("--systems", type=_system_list, help="comma list (all; --quick: sidequest)")
    p.add_argument("-n", "--jobs", type=at_least(100), help="drain and bulk jobs (100000)")
    p.add_argument("--runs", type=at_least(1), help="runs; medians are reported (3)")
    p.add_argument("--proxy-jobs", type=at_least(10), help="jobs drained through the proxy"
                   " (jobs/10: a system that makes many round trips per job is slow there)")
    p.add_argument("--latency-jobs", type=at_least(2), help="jobs in the latency test (1000)")
    p.add_argument("--max-gap", type=float, help="longest idle gap before a latency push, s (2)")
    p.add_argument("--delay-ms", type=float, default=1.0, help="proxy delay each way (1 ms)")
    p.add_argument("--seed", type=int, default=1, help="seed of the latency gaps (1)")
    p.add_argument("--quick", action="store_true", help="small sizes, 1 run, Sidequest only,"
                   " no install, no docs: proves the harness works (make test)")
    p.add_argument("--skip-install", action="store_true",
                   help="use bench/.venvs and Ruby Sidekiq as they are")
    p.add_argument("--no-write", action="store_true",
                   help="print the report only; leave docs/performance.md alone")
    p.add_argument("--logs", type=Path, help="keep the workers' logs in this directory")
    return p


def parse_args(argv: Sequence[str] | None) -> report.Options:
    args = parser().parse_args(argv)
    quick = args.quick
    # --quick only changes the defaults: `--quick --systems sidequest,rq` still means both.
    jobs = args.jobs or (2_000 if quick else 100_000)
    return report.Options(
        systems=args.systems or (("sidequest",) if quick else tuple(BY_NAME)),
        jobs=jobs,
        proxy_jobs=args.proxy_jobs or max(jobs // 10, 100),
        latency_jobs=args.latency_jobs or (30 if quick else 1_000),
        max_gap=args.max_gap if args.max_gap is not None else (0.1 if quick else 2.0),
        runs=args.runs or (1 if quick else 3),
        delay_ms=args.delay_ms,
        seed=args.seed,
        quick=quick,
        install=not (args.skip_install or quick),
        write=not (args.no_write or quick),  # quick figures never land in the docs
        logs=args.logs,
    )


# -- the bench's world: Redis, the proxy, the environments ---------------------------------


@dataclass
class World:
    opts: report.Options
    server: PrivateRedis
    proxy_url: str
    logs: Path
    src: Path  # the snapshot of src/ that Sidequest's worker and pusher import
    gaps: dict[int, Path] = field(default_factory=dict)

    def counter(self) -> redis.Redis:
        return self.server.client(1)

    def flush(self) -> None:
        with self.server.client(0) as client:
            client.flushall()  # every database: the system's keys and the counter

    def env(self, system: System, url: str, worker: bool) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("SIDEQUEST_REDIS_URL", None)  # it wins over REDIS_URL and may name a real one
        env.pop("VIRTUAL_ENV", None)
        paths = [str(ROOT), *([str(self.src)] if system.name == "sidequest" else [])]
        env.update({"REDIS_URL": url, REDIS_URL_ENV: url,
                    COUNTER_URL_ENV: self.server.url(1), "PYTHONPATH": os.pathsep.join(paths)})
        if worker:
            env.update(system.worker_env)
        return env

    def push(self, system: System, args: list[str], timeout: float = PUSH_TIMEOUT) -> float:
        """Run the system's pusher; returns the seconds it timed itself."""
        return float(self.agent(system, [*system.pusher(), *args], timeout)["seconds"])

    def job_alone(self, system: System) -> float:
        """CPU microseconds of one run of the system's bench job, alone on one thread."""
        return float(self.agent(system, system.job_alone(JOB_ALONE), PUSH_TIMEOUT)["cpu_us"])

    def agent(self, system: System, command: list[str], timeout: float) -> dict[str, Any]:
        """Run a command of the system's environment that prints one JSON line; its fields."""
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                  env=self.env(system, self.server.url(0), False),
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{' '.join(command)} took over {timeout:.0f} s") from None
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise BenchError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
        return report.json_line(lines[-1])

    def push_rate(self, system: System, mode: str, count: int) -> float:
        return rate(count, self.push(system, [mode, "--count", str(count)]))

    @contextlib.contextmanager
    def worker(self, system: System, url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
        """One worker process of the system; stopped (and its process group) on the way out."""
        with self.workers(system, [system.worker(system.bin_dir(), url)], url, [log]) as procs:
            yield procs[0]

    @contextlib.contextmanager
    def workers(self, system: System, commands: list[list[str]], url: str,
                logs: list[Path]) -> Iterator[list[subprocess.Popen[bytes]]]:
        """Worker commands started together, each logging to its own file; all stopped (and
        their process groups) on the way out."""
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for command, log in zip(commands, logs, strict=True):
                with open(log, "wb") as out:  # the child has its own copy of the descriptor
                    procs.append(subprocess.Popen(
                        command, cwd=ROOT, env=self.env(system, url, True),
                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                        start_new_session=True))
            yield procs
        except BenchError as exc:
            tails = "".join(f"\n--- {log.name} ---\n{log_tail(log)}" for log in logs)
            raise BenchError(f"{exc}{tails}") from None
        finally:
            terminate_all(procs, STOP_WAIT)
            for proc in procs:
                kill_group(proc)  # prefork children a SIGTERM'd parent left behind


# -- one system, one run -------------------------------------------------------------------


def measure(world: World, system: System, run: int) -> report.Sample:
    opts = world.opts
    world.flush()
    single = world.push_rate(system, "single", opts.single)
    world.flush()  # only the bulk-pushed jobs are drained
    bulk = world.push_rate(system, "bulk", opts.jobs)
    drain, rss, (p50, p99), cost = drain_then_latency(world, system, run)
    world.flush()
    world.push_rate(system, "bulk", opts.proxy_jobs)
    proxy = proxied_drain(world, system, run)
    return report.Sample(single, bulk, drain, rss, p50, p99, proxy,
                         two_process_drain(world, system, run), cost.cpu_us, cost.voluntary,
                         cost.involuntary, cost.redis_us, world.job_alone(system))


def drain_then_latency(world: World, system: System,
                       run: int) -> tuple[float, float, tuple[float, float], cost.Cost]:
    """Drain the queue with a new worker, then measure latency on it, now idle. Also what
    each drained job cost (bench/cost.py), between the first completion and the last."""
    log = world.logs / f"{system.name}-{run}.log"
    with (world.worker(system, world.server.url(0), log) as proc, world.counter() as counter,
          world.server.client(0) as server):
        snapshots: list[cost.Usage] = []

        def snapshot() -> None:
            snapshots.append(cost.usage(proc.pid, server))

        with RssSampler(proc.pid) as sampler:
            drain = wait_count(counter_of(counter, DONE_KEY), world.opts.jobs, proc,
                               on_first=snapshot)
            snapshot()
        check_exact(counter, world.opts.jobs)
        latency = idle_latency(world, system, proc, counter, run)
    per_job = cost.per_job(snapshots[0], snapshots[-1], drain.jobs - drain.first_count)
    return drain.rate, sampler.peak / MB, latency, per_job


def check_exact(counter: redis.Redis, jobs: int, what: str = "jobs") -> None:
    time.sleep(SETTLE)
    done = int(counter.get(DONE_KEY) or 0)
    if done != jobs:
        raise BenchError(f"{done:,} completions for {jobs:,} {what}: some job ran twice")


def idle_latency(world: World, system: System, proc: subprocess.Popen[bytes],
                 counter: redis.Redis, run: int) -> tuple[float, float]:
    counter.delete(DONE_KEY, LATENCY_KEY)
    time.sleep(world.opts.max_gap)  # let the drain's last poll age: the worker is idle
    gaps = world.gaps[run]
    world.push(system, ["latency", "--gaps", str(gaps)],
               timeout=world.opts.latency_jobs * world.opts.max_gap + 300)
    # Counted by their own entries: a drain job that ran again late must not stand in.
    pushed = world.opts.latency_jobs + 1  # the first is not counted (latency_percentiles)
    wait_count(lambda: int(counter.llen(LATENCY_KEY)), pushed, proc)
    check_exact(counter, pushed, "latency jobs (drain jobs ran again?)")
    return report.latency_percentiles(counter.lrange(LATENCY_KEY, 0, -1))


def proxied_drain(world: World, system: System, run: int) -> float:
    log = world.logs / f"{system.name}-{run}-proxy.log"
    with world.worker(system, world.proxy_url, log) as proc, world.counter() as counter:
        drain = wait_count(counter_of(counter, DONE_KEY), world.opts.proxy_jobs, proc)
        check_exact(counter, world.opts.proxy_jobs)
    return drain.rate


def two_process_drain(world: World, system: System, run: int) -> float | None:
    """The bulk-pushed drain with two worker processes at once; None if the system has no
    way to run them that the bench measures."""
    url = world.server.url(0)
    commands = system.two_process_workers(url)
    if not commands:
        return None
    world.flush()
    world.push_rate(system, "bulk", world.opts.jobs)
    logs = [world.logs / f"{system.name}-{run}-2p-{i}.log" for i in range(1, len(commands) + 1)]
    with world.workers(system, commands, url, logs) as procs, world.counter() as counter:
        drain = wait_count(counter_of(counter, DONE_KEY), world.opts.jobs, *procs)
        check_exact(counter, world.opts.jobs)
    return drain.rate


# -- the whole suite -----------------------------------------------------------------------


def snapshot_src(tmp: Path) -> Path:
    """A copy of src/ as it is now, for every Sidequest process of the suite.

    Others edit and commit src/ while a 20-minute suite runs; without the copy each worker
    start would import whatever is there at that moment, and the runs would measure
    different code. On PYTHONPATH it comes before the editable install's path.
    """
    dest = tmp / "src"
    shutil.copytree(ROOT / "src", dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def write_gaps(opts: report.Options, tmp: Path) -> dict[int, Path]:
    """One gap list per run, the same for every system in that run."""
    files = {}
    for run in range(1, opts.runs + 1):
        rng = random.Random(opts.seed * 1000 + run)
        path = tmp / f"gaps-{run}.txt"
        path.write_text("".join(f"{rng.uniform(0, opts.max_gap):.6f}\n"
                                for _ in range(opts.latency_jobs + 1)))
        files[run] = path
    return files


@contextlib.contextmanager
def latency_proxy(server: PrivateRedis, delay_ms: float) -> Iterator[str]:
    """bench/latency_proxy.py in a process of its own; yields the Redis URL through it."""
    command = [sys.executable, str(ROOT / "bench" / "latency_proxy.py"),
               "--target", f"{server.host}:{server.port}", "--delay-ms", str(delay_ms)]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()  # "listening on HOST:PORT"
        if not line.startswith("listening on "):
            raise BenchError(f"the latency proxy did not start: {line!r}")
        yield f"redis://{line.removeprefix('listening on ')}/0"
    finally:
        terminate(proc, 5)


def proxy_rtt_ms(url: str, pings: int = 50) -> float:
    """Mean PING round trip, ms: through the proxy, the asked delay plus its timer's slack."""
    client = redis.Redis.from_url(url)
    with client:
        client.ping()
        start = time.perf_counter()
        for _ in range(pings):
            client.ping()
        return (time.perf_counter() - start) / pings * 1000


def run_all(world: World, systems: list[System], load: report.Load) -> report.Results:
    results = report.Results(systems=[s.name for s in systems])
    for run in range(1, world.opts.runs + 1):
        for system in systems:
            load.sample()
            progress(f"run {run}/{world.opts.runs} {system.name}: ")
            started = time.monotonic()
            try:
                sample = measure(world, system, run)
            except BenchError as exc:
                if system.name == "sidequest":
                    raise
                results.failures.setdefault(system.name, []).append(f"run {run}: {exc}")
                progress(f"FAILED ({str(exc).splitlines()[0]})\n")
                continue
            results.samples.setdefault(system.name, []).append(sample)
            two = "" if sample.drain2 is None else f", 2 processes {sample.drain2:,.0f}"
            progress(f"drain {sample.drain:,.0f} jobs/s{two}, p50 {sample.p50_ms:.1f} ms"
                     f" ({time.monotonic() - started:.0f} s)\n")
    return results


def bench(opts: report.Options) -> int:
    systems = [BY_NAME[name] for name in opts.systems]
    if opts.install:
        install.ensure(systems, chart=opts.write)
    else:
        install.check_installed(systems, chart=opts.write)
    executable = shutil.which("redis-server")
    if executable is None:
        raise BenchError("redis-server is not installed: run `make redis`")
    load = report.Load()
    with tempfile.TemporaryDirectory(prefix="sidequest-suite-") as tmp, \
            PrivateRedis(executable, Path(tmp)) as server, \
            latency_proxy(server, opts.delay_ms) as proxy_url:
        logs = opts.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        setup = report.Setup.collect(opts, systems, server, proxy_rtt_ms(server.url(0)),
                                     proxy_rtt_ms(proxy_url))  # with git state of src/ now
        world = World(opts, server, proxy_url, logs, snapshot_src(Path(tmp)),
                      write_gaps(opts, Path(tmp)))
        results = run_all(world, systems, load)
    setup.load = load.finish()
    print(report.text(setup, results))
    if opts.write:
        report.write_docs(setup, results)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly as Ctrl-C does


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return bench(opts)
    except KeyboardInterrupt:
        progress("\ninterrupted: workers, proxy and redis-server stopped\n")
        return 130
    except BenchError as exc:
        progress(f"\nbench failed: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
