#!/usr/bin/env python3
"""Latency bench: how long a pushed job waits before it starts, idle and under load.

    .venv/bin/python bench/latency.py                                # 300 jobs per scenario
    .venv/bin/python bench/latency.py --jobs 300 --max-gap 0.3 --runs 3
    .venv/bin/python bench/latency.py --scenarios idle3,busy3        # a subset
    .venv/bin/python bench/latency.py --quick                        # 20 jobs, tiny gaps (tests)

Scenarios, each with a worker of its own (strict queue order where there are several):
  idle1  idle, one queue       -c 25 -q default; latency jobs into default
  idle3  idle, three queues    -c 25 -q critical -q default -q low; latency jobs into low, the
                               queue the worker does not block on: it must be woken for it
  busy1  busy, one queue       -c 10 -q default while another process pushes RATE no-op jobs/s
                               into default, paced (not a backlog); latency jobs into default
  busy3  busy, three queues    -c 10 -q critical -q default -q low, the same load into
                               default; latency jobs into critical
Latency jobs are pushed one at a time, after random gaps of 0-MAX_GAP s, each carrying its
push time (time.time()); the job records the time it started (bench/jobs.py). Figures are
start minus push, in ms; the first push of each scenario is left out (see
bench/report.latency_delays). Everything runs against a private redis-server on a free
loopback port, started here and stopped at the end, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

import redis

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ on sys.path, not the repo root that holds the `bench`
# package; src/ too, so that the bench runs even without the editable install.
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sidequest  # noqa: E402
from bench.agents.common import LATENCY_KEY  # noqa: E402
from bench.harness import (  # noqa: E402
    BenchError,
    PrivateRedis,
    at_least,
    kill_group,
    log_tail,
    progress,
    terminate,
)
from bench.jobs import DONE_KEY, Noop  # noqa: E402
from bench.load import LOAD_QUEUE, LOAD_TICK, PUSHED_KEY, QMAX_KEY, background_load  # noqa: E402
from bench.report import latency_delays, percentile  # noqa: E402
from bench.throughput import STOP_WAIT, machine_lines, start_worker  # noqa: E402
from sidequest import keys  # noqa: E402

BACKLOG = 0.1  # a load queue holding this many seconds of load means the worker fell behind
START_WAIT = 30.0  # worker start-up: Python, imports, the first heartbeat, a warm-up job
ENTRY_WAIT = 10.0  # after the last push, every latency job must have started by then
POLL = 0.005
LOG_LEVEL = "WARNING"  # per-job log lines would be measured too


# -- options -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    queues: tuple[str, ...]  # the worker's -q list, in strict order
    target: str  # the queue the latency jobs go to
    concurrency: int
    busy: bool  # a background load flows into LOAD_QUEUE while it is measured

    @property
    def worker_text(self) -> str:
        return f"-c {self.concurrency} " + " ".join(f"-q {q}" for q in self.queues)


THREE = ("critical", "default", "low")
SCENARIOS = (
    Scenario("idle1", "idle, one queue", ("default",), "default", 25, busy=False),
    Scenario("idle3", "idle, three queues", THREE, "low", 25, busy=False),
    Scenario("busy1", "busy, one queue", ("default",), "default", 10, busy=True),
    Scenario("busy3", "busy, three queues", THREE, "critical", 10, busy=True),
)
BY_KEY = {s.key: s for s in SCENARIOS}


@dataclass(frozen=True)
class Options:
    jobs: int
    max_gap: float
    rate: int
    runs: int
    scenarios: tuple[Scenario, ...]
    seed: int
    settle: float  # seconds the worker idles (or carries the load) before the pushes


# -- the worker ----------------------------------------------------------------------------


@dataclass
class Stopped:
    code: int | None = None  # the worker's exit code after SIGTERM, once it has stopped


@contextlib.contextmanager
def worker(server: PrivateRedis, scenario: Scenario,
           log_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Stopped]]:
    """One worker for the scenario; stopped with SIGTERM (then SIGKILL) on the way out."""
    stopped = Stopped()
    with open(log_path, "wb") as log:
        proc = start_worker(server, scenario.concurrency, LOG_LEVEL, log,
                            queues=scenario.queues)
    try:
        yield proc, stopped
    except BenchError as exc:
        raise BenchError(f"{exc}\n--- worker log ---\n{log_tail(log_path)}") from None
    finally:
        stopped.code = terminate(proc, STOP_WAIT)
        kill_group(proc)  # anything its process group left behind


def wait_until(ready: Callable[[], bool], what: str, timeout: float,
               *procs: subprocess.Popen[bytes]) -> None:
    """Poll ``ready`` until it holds; fail after ``timeout`` s or if one of ``procs`` exits."""
    deadline = time.monotonic() + timeout
    while not ready():
        dead = next((p for p in procs if p.poll() is not None), None)
        if dead is not None:
            raise BenchError(f"pid {dead.pid} exited (code {dead.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            raise BenchError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL)


def wait_started(sq: redis.Redis, counter: redis.Redis, scenario: Scenario,
                 proc: subprocess.Popen[bytes]) -> None:
    # Registered is not running yet (the first heartbeat comes before the threads start),
    # so a warm-up job also goes through the very queue and path the latency jobs take.
    wait_until(lambda: sq.scard(keys.PROCESSES) > 0, "the worker to register", START_WAIT,
               proc)
    Noop.set(queue=scenario.target).perform_async(-1)
    wait_until(lambda: int(counter.get(DONE_KEY) or 0) >= 1, "the warm-up job", START_WAIT,
               proc)


# -- one scenario --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    delays: list[float]  # ms, in push order, the first push left out
    load_rate: float | None  # background jobs/s pushed during the window (None: idle)
    max_queue: int | None  # longest load queue seen during the window
    worker_exit: int

    @property
    def p50(self) -> float:
        return percentile(self.delays, 50)

    @property
    def p99(self) -> float:
        return percentile(self.delays, 99)

    @property
    def max(self) -> float:
        return max(self.delays)


@dataclass(frozen=True)
class Window:
    """What the latency pushes saw: the entries, and the load during them."""

    entries: list[bytes]
    load_rate: float | None
    max_queue: int | None


def gaps_for(opts: Options, run: int) -> list[float]:
    """One extra job first (its push also opens the connection and is not counted); the
    same gaps for every scenario of a run, so that they differ only in what they measure."""
    rng = random.Random(opts.seed * 1000 + run)
    return [rng.uniform(0, opts.max_gap) for _ in range(opts.jobs + 1)]


def run_scenario(server: PrivateRedis, opts: Options, scenario: Scenario, run: int,
                 workdir: Path) -> Sample:
    with server.client(0) as sq, server.client(1) as counter:
        sq.flushall()  # every database: queues, Sidequest's keys, the counters
        log = workdir / f"{scenario.key}-{run}"
        with worker(server, scenario, log.with_suffix(".worker.log")) as (proc, stopped):
            wait_started(sq, counter, scenario, proc)
            if scenario.busy:
                with background_load(server, opts.rate, log.with_suffix(".load.log")) as load:
                    wait_until(lambda: int(counter.get(PUSHED_KEY) or 0) > 0,
                               "the background load to start", START_WAIT, load, proc)
                    time.sleep(opts.settle)  # the load flows: the worker reaches steady state
                    window = measure(counter, opts, scenario, run, proc, load)
            else:
                time.sleep(opts.settle)  # the worker goes idle: the state being measured
                window = measure(counter, opts, scenario, run, proc)
    assert stopped.code is not None  # set by worker() on the way out
    return Sample(latency_delays(window.entries), window.load_rate, window.max_queue,
                  stopped.code)


def measure(counter: redis.Redis, opts: Options, scenario: Scenario, run: int,
            *procs: subprocess.Popen[bytes]) -> Window:
    """Push the latency jobs and wait for them all to have started."""
    gaps = gaps_for(opts, run)
    counter.delete(LATENCY_KEY, QMAX_KEY)  # the window starts here
    started, pushed_before = time.monotonic(), int(counter.get(PUSHED_KEY) or 0)
    pusher = Noop.set(queue=scenario.target)
    for i, gap in enumerate(gaps):
        time.sleep(gap)  # the workload itself: the worker idles (or carries the load) so long
        pusher.perform_async(i, time.time())
    wait_until(lambda: int(counter.llen(LATENCY_KEY)) >= len(gaps),
               f"{len(gaps)} latency jobs to start", ENTRY_WAIT, *procs)
    seconds = time.monotonic() - started
    pushed = int(counter.get(PUSHED_KEY) or 0) - pushed_before
    qmax = counter.zscore(QMAX_KEY, "max")
    entries: list[bytes] = list(counter.lrange(LATENCY_KEY, 0, -1))  # type: ignore[arg-type]
    if len(entries) != len(gaps):
        raise BenchError(f"{len(entries)} latency entries for {len(gaps)} pushes: a job ran"
                         " twice")
    if not scenario.busy:
        return Window(entries, None, None)
    return Window(entries, pushed / seconds, int(qmax or 0))


# -- the report ----------------------------------------------------------------------------


def median_of(samples: Sequence[Sample], value: Callable[[Sample], float | None]) -> float | None:
    values = [v for v in map(value, samples) if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"


HEAD = ("scenario", "worker", "latency jobs into", "jobs", "p50 ms", "p99 ms", "max ms",
        "load jobs/s", "max queue")


def row(opts: Options, scenario: Scenario, samples: Sequence[Sample]) -> list[str]:
    return [scenario.label, scenario.worker_text, scenario.target, f"{opts.jobs:,}",
            fmt(median_of(samples, lambda s: s.p50), 2),
            fmt(median_of(samples, lambda s: s.p99), 2),
            fmt(median_of(samples, lambda s: s.max), 2),
            fmt(median_of(samples, lambda s: s.load_rate), 0),
            fmt(median_of(samples, lambda s: s.max_queue), 0)]


def table(rows: list[list[str]]) -> list[str]:
    # Columns are separated by two spaces at least, and no cell holds two in a row, so a
    # reader (the test) can split a line on runs of spaces.
    lines = [list(HEAD), *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEAD))]
    return ["  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines]


def backlog_notes(opts: Options, results: dict[str, list[Sample]]) -> list[str]:
    """A load queue that grew past BACKLOG seconds of load: the worker fell behind, so that
    scenario measured queueing behind a backlog, not pick-up under a steady load."""
    limit = opts.rate * BACKLOG
    notes = []
    for key, samples in results.items():
        worst = max((s.max_queue for s in samples if s.max_queue is not None), default=None)
        if worst is not None and worst > limit:
            notes.append(f"WARNING {key}: the load queue reached {worst:,} jobs (over"
                         f" {BACKLOG:g} s of load): the worker fell behind")
    return notes


def report(machine: list[str], opts: Options, results: dict[str, list[Sample]]) -> int:
    runs = f"{opts.runs} run" + ("s, medians" if opts.runs > 1 else "")
    setup = (f"setup     {opts.jobs:,} latency jobs per scenario, pushed one at a time after"
             f" random gaps of 0-{opts.max_gap:g} s (seed {opts.seed}); busy: {opts.rate:,}"
             f" no-op jobs/s into {LOAD_QUEUE} from another process, a batch every"
             f" {LOAD_TICK * 1000:g} ms; {runs}; worker log level {LOG_LEVEL}")
    rows = [row(opts, BY_KEY[key], samples) for key, samples in results.items()]
    codes = [s.worker_exit for samples in results.values() for s in samples]
    clean = all(code == 0 for code in codes)
    stop = ("worker stopped cleanly: " + ("yes" if clean else "NO")
            + f" (exit codes after SIGTERM: {', '.join(map(str, codes))})")
    notes = [
        "latency = start of perform minus push time (time.time() on both sides, one machine);"
        " the first push of each scenario opens the connection and is not counted",
        f"load jobs/s = background jobs pushed during the latency pushes; max queue = longest"
        f" queue:{LOAD_QUEUE} seen right after a load batch (a small figure: no backlog)",
        stop, *backlog_notes(opts, results)]
    print("\n".join(["Sidequest latency bench: push to start of perform", *machine, setup, "",
                     *table(rows), "", *notes]))
    return 0 if clean else 1


# -- command line --------------------------------------------------------------------------


def _scenario_list(text: str) -> tuple[Scenario, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in BY_KEY]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or '(none)'}; known: {', '.join(BY_KEY)}")
    return tuple(s for s in SCENARIOS if s.key in names)  # always in the table's order


def _gap(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="scenarios: " + ", ".join(BY_KEY))
    parser.add_argument("-n", "--jobs", type=at_least(2),
                        help="latency jobs per scenario (300; --quick 20)")
    parser.add_argument("--max-gap", type=_gap,
                        help="longest random gap before a latency push, s (0.5; --quick 0.05)")
    parser.add_argument("--rate", type=at_least(1),
                        help="background load of the busy scenarios, jobs/s (2000; --quick 500)")
    parser.add_argument("--runs", type=at_least(1), default=1,
                        help="runs; the median of each figure is reported (1)")
    parser.add_argument("--scenarios", type=_scenario_list, default=SCENARIOS,
                        help="comma list of scenarios to run (all)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random gaps (1)")
    parser.add_argument("--quick", action="store_true",
                        help="20 jobs, gaps up to 0.05 s, load 500 jobs/s: for the test suite")
    args = parser.parse_args(argv)
    quick = args.quick
    # --quick only changes the defaults, so `--quick --jobs 100` still means 100 jobs.
    return Options(
        jobs=args.jobs or (20 if quick else 300),
        max_gap=args.max_gap if args.max_gap is not None else (0.05 if quick else 0.5),
        rate=args.rate or (500 if quick else 2000),
        runs=args.runs,
        scenarios=args.scenarios,
        seed=args.seed,
        settle=0.5 if quick else 1.0,
    )


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly as Ctrl-C does


def run_all(server: PrivateRedis, opts: Options, workdir: Path) -> dict[str, list[Sample]]:
    """Scenarios interleaved within each run, so that a noisy minute hurts them all alike."""
    results: dict[str, list[Sample]] = {s.key: [] for s in opts.scenarios}
    for run in range(1, opts.runs + 1):
        for scenario in opts.scenarios:
            progress(f"run {run}/{opts.runs} {scenario.key} ({scenario.label}): ")
            sample = run_scenario(server, opts, scenario, run, workdir)
            results[scenario.key].append(sample)
            load = "" if sample.load_rate is None else (
                f", load {sample.load_rate:,.0f} jobs/s, max queue {sample.max_queue}")
            progress(f"p50 {sample.p50:.2f} ms, p99 {sample.p99:.2f} ms,"
                     f" max {sample.max:.2f} ms{load}\n")
    return results


def bench(opts: Options) -> int:
    executable = shutil.which("redis-server")
    if executable is None:
        raise BenchError("redis-server is not installed: run `make redis`")
    with tempfile.TemporaryDirectory(prefix="sidequest-latency-") as tmp, \
            PrivateRedis(executable, Path(tmp)) as server:
        sidequest.configure(server.url(0))  # the bench's own pushes go to the private server
        machine = machine_lines(server)
        results = run_all(server, opts, Path(tmp))
    return report(machine, opts, results)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return bench(opts)
    except KeyboardInterrupt:
        progress("\ninterrupted: workers, load and redis-server stopped\n")
        return 130
    except BenchError as exc:
        progress(f"\nbench failed: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
