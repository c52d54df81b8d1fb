"""The suite's results: medians, ratios to Sidequest, the printed table, docs/performance.md.

The chart is drawn by bench/chart.py in its own environment (matplotlib), fed a JSON file.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped,unused-ignore]

from bench import install, targets
from bench.harness import ROOT, BenchError, PrivateRedis, load_text, machine_text
from bench.systems import BY_NAME, SYSTEMS, System

if TYPE_CHECKING:  # only for the annotation: suite imports this module
    from bench.suite import Options

DOC = ROOT / "docs" / "performance.md"
IMAGE = ROOT / "docs" / "images" / "performance.png"
BASE = "sidequest"
NOT_MEASURED = "-"


@dataclass(frozen=True)
class Sample:
    """One system, one run."""

    single: float
    bulk: float
    drain: float
    rss_mb: float
    p50_ms: float
    p99_ms: float
    proxy: float
    drain2: float | None = None  # None: the system has no two-process mode the bench runs


@dataclass
class Results:
    systems: list[str]
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)

    def values(self, system: str, key: str) -> list[float]:
        """The system's values of one figure over its runs, leaving out runs without one."""
        values = (getattr(s, key) for s in self.samples.get(system, []))
        return [value for value in values if value is not None]

    def median(self, system: str, key: str) -> float | None:
        values = self.values(system, key)
        return statistics.median(values) if values else None

    def spread(self, system: str, key: str) -> tuple[float, float] | None:
        values = self.values(system, key)
        return (min(values), max(values)) if values else None


def _everyone(system: System) -> bool:
    return True


def _two_processes(system: System) -> bool:
    return system.two_processes is not None


@dataclass(frozen=True)
class Figure:
    key: str  # the Sample field
    label: str
    unit: str
    higher_is_better: bool = True
    decimals: int = 0
    measured: Callable[[System], bool] = _everyone  # False: "-" for that system, not "failed"

    @property
    def head(self) -> str:
        return f"{self.label} {self.unit}"

    def fmt(self, value: float) -> str:
        return f"{value:,.{self.decimals}f}"


FIGURES = (
    Figure("drain", "drain", "jobs/s"),
    Figure("drain2", "drain, 2 processes", "jobs/s", measured=_two_processes),
    Figure("proxy", "drain +1 ms", "jobs/s"),
    Figure("bulk", "bulk enqueue", "jobs/s"),
    Figure("single", "single enqueue", "jobs/s"),
    Figure("p50_ms", "latency p50", "ms", higher_is_better=False, decimals=1),
    Figure("p99_ms", "latency p99", "ms", higher_is_better=False, decimals=1),
    Figure("rss_mb", "peak RSS", "MB", higher_is_better=False),
)


# -- small helpers the suite uses ----------------------------------------------------------


def json_line(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        raise BenchError(f"a pusher printed {line!r}, not its JSON result") from None
    if not isinstance(value, dict):
        raise BenchError(f"a pusher printed {line!r}, not a JSON object")
    return value


def percentile(values: Sequence[float], q: int) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


def latency_delays(entries: Sequence[bytes | str]) -> list[float]:
    """Start minus push, in ms, of the "<push time> <start time>" entries the jobs recorded,
    in push order, leaving out the earliest push: the pusher's first, which also opens its
    connection (the benches push one job more than they count, for every system)."""
    times = sorted(tuple(float(part) for part in entry.split()) for entry in entries)
    delays = [(started - pushed) * 1000 for pushed, started in times[1:]]
    if not delays:
        raise BenchError("the latency jobs recorded no timestamps")
    return delays


def latency_percentiles(entries: Sequence[bytes | str]) -> tuple[float, float]:
    """p50 and p99, in ms, of latency_delays(entries)."""
    delays = latency_delays(entries)
    return percentile(delays, 50), percentile(delays, 99)


class Load:
    """How busy the machine was while the suite ran, and how much of that was not us.

    The suite itself keeps both cores busy, so the load average alone says little: CPU time
    of the whole machine minus that of this process and its (waited-for) children is what
    the other users of the machine took.
    """

    def __init__(self) -> None:
        self.start_avg = load_text()
        self.peak = os.getloadavg()[0]
        self.started = time.monotonic()
        self.cpu = psutil.cpu_times()
        self.own = _own_cpu()

    def sample(self) -> None:
        self.peak = max(self.peak, os.getloadavg()[0])

    def finish(self) -> str:
        self.sample()
        wall = time.monotonic() - self.started
        now = psutil.cpu_times()
        busy = _busy(now) - _busy(self.cpu)
        steal = getattr(now, "steal", 0.0) - getattr(self.cpu, "steal", 0.0)
        others = max(busy - (_own_cpu() - self.own), 0.0)
        cores = psutil.cpu_count() or 1
        return (f"load average {self.start_avg} at the start, {load_text()} at the end"
                f" (1-min peak {self.peak:.2f}, the suite's own processes included);"
                f" other processes used {others:,.0f} CPU-s, {others / (wall * cores):.0%} of"
                f" the machine's {cores} cores over the {wall / 60:.1f} min run;"
                f" hypervisor steal {steal / (wall * cores):.1%}")


def _busy(times: Any) -> float:
    # guest time is already counted in user time on Linux; idle and iowait are not work.
    spare = ("idle", "iowait", "guest", "guest_nice")
    return float(sum(times)) - sum(float(getattr(times, name, 0.0)) for name in spare)


def _own_cpu() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


# -- what ran where ------------------------------------------------------------------------


@dataclass
class Setup:
    date: str
    machine: str
    python: str
    redis: str
    sizes: str
    versions: dict[str, str]
    command: str
    load: str = ""

    @classmethod
    def collect(cls, opts: Options, systems: list[System], server: PrivateRedis,
                direct_ms: float, proxied_ms: float) -> Setup:
        sizes = (f"drain {opts.jobs:,} jobs (bulk-pushed first); {opts.single:,} single"
                 f" pushes; drain through the proxy {opts.proxy_jobs:,} jobs; latency"
                 f" {opts.latency_jobs:,} jobs, random gaps of 0-{opts.max_gap:g} s;"
                 f" {opts.runs} run{'s' if opts.runs > 1 else ''}, medians, systems"
                 " interleaved; every worker at log level WARNING")
        if (opts.jobs < 100_000 or opts.proxy_jobs < 10_000 or opts.latency_jobs < 1_000
                or opts.max_gap < 2.0):
            sizes += ("; smaller than the defaults (100,000 jobs, 10,000 through the proxy,"
                      " 1,000 latency jobs with gaps of up to 2 s): see Running it")
        redis_text = (f"redis-server {server.version()} on loopback, private to the bench;"
                      f" PING {direct_ms:.2f} ms direct, {proxied_ms:.2f} ms through the"
                      f" proxy ({opts.delay_ms:g} ms each way asked)")
        return cls(
            date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            machine=machine_text(),
            python=f"{platform.python_version()} for every Python system",
            redis=redis_text,
            sizes=sizes,
            versions={s.name: install.versions(s) for s in systems},
            command=" ".join(["bench/suite.py", *_shown_args(sys.argv[1:])]),
        )


def _shown_args(args: list[str]) -> list[str]:
    """The command line as the page shows it: without --logs, a path on one machine."""
    shown: list[str] = []
    skip = False
    for arg in args:
        if skip or arg.startswith("--logs="):
            skip = False
            continue
        skip = arg == "--logs"
        if not skip:
            shown.append(arg)
    return shown


# -- the table -----------------------------------------------------------------------------


def cell(results: Results, system: str, fig: Figure) -> str:
    value = results.median(system, fig.key)
    if value is None:
        return "failed" if fig.measured(BY_NAME[system]) else NOT_MEASURED
    text = fig.fmt(value)
    if fig.key == "bulk" and not BY_NAME[system].batched:
        text += "*"
    base = results.median(BASE, fig.key)
    if system == BASE or not base:
        return text
    return f"{text} ({value / base:.2f}x)"


def rows(results: Results) -> list[list[str]]:
    head = ["system", *(f.head for f in FIGURES)]
    body = [[BY_NAME[name].label, *(cell(results, name, f) for f in FIGURES)]
            for name in results.systems]
    return [head, *body]


def text_table(results: Results) -> list[str]:
    table = rows(results)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            for row in table]


def markdown_table(results: Results) -> list[str]:
    table = rows(results)
    lines = ["| " + " | ".join(row) + " |" for row in table]
    lines.insert(1, "|---" + "|---:" * (len(table[0]) - 1) + "|")
    return lines


def notes(results: Results) -> list[str]:
    lines = ["(x) = the system's median divided by Sidequest's: above 1 is better for jobs/s,"
             " below 1 is better for ms and MB.",
             "* no batch push in this system: bulk is a loop of single pushes.",
             "peak RSS: the worker's whole process tree during the drain; MB = 2^20 bytes.",
             *not_measured_notes(results)]
    for name, errors in results.failures.items():
        lines.append(f"{name} failed {len(errors)} of its runs: "
                     + "; ".join(e.splitlines()[0] for e in errors))
    return lines


def not_measured_notes(results: Results) -> list[str]:
    lines = []
    for fig in FIGURES:
        if all(fig.measured(BY_NAME[name]) for name in results.systems):
            continue
        names = " and ".join(system.label for system in SYSTEMS if fig.measured(system))
        lines.append(f'"{NOT_MEASURED}" = not measured: {fig.label} runs {names} only.')
    return lines


def setup_lines(setup: Setup) -> list[str]:
    lines = [f"date      {setup.date}", f"machine   {setup.machine}",
             f"python    {setup.python}", f"redis     {setup.redis}",
             f"setup     {setup.sizes}", f"load      {setup.load}", "versions"]
    width = max(len(name) for name in setup.versions)
    lines += [f"  {name.ljust(width)}  {line}" for name, line in setup.versions.items()]
    return lines


def text(setup: Setup, results: Results) -> str:
    return "\n".join(["Sidequest comparison bench", *setup_lines(setup), "",
                      *text_table(results), "", *notes(results)])


# -- docs/performance.md -------------------------------------------------------------------


def write_docs(setup: Setup, results: Results) -> None:
    IMAGE.parent.mkdir(parents=True, exist_ok=True)
    draw_chart(results)
    DOC.write_text(markdown(setup, results))
    print(f"\nwrote {DOC.relative_to(ROOT)} and {IMAGE.relative_to(ROOT)}")


def chart_data(results: Results) -> dict[str, Any]:
    """What bench/chart.py draws: per figure, the systems it is measured for and their
    medians (None: failed)."""
    figures = []
    for fig in FIGURES:
        names = [n for n in results.systems if fig.measured(BY_NAME[n])]
        figures.append({"label": fig.label, "unit": fig.unit, "key": fig.key,
                        "higher_is_better": fig.higher_is_better,
                        "systems": [BY_NAME[n].label for n in names],
                        "values": [results.median(n, fig.key) for n in names]})
    return {"base": BY_NAME[BASE].label, "figures": figures}


def draw_chart(results: Results) -> None:
    source = IMAGE.with_suffix(".json.tmp")
    source.write_text(json.dumps(chart_data(results)))
    try:
        done = subprocess.run([str(install.plot_python()), str(ROOT / "bench" / "chart.py"),
                               str(source), str(IMAGE)], capture_output=True, text=True,
                              timeout=300, check=False)
    finally:
        source.unlink()
    if done.returncode != 0:
        raise BenchError(f"bench/chart.py failed:\n{done.stderr[-2000:]}")


def spread_table(results: Results) -> list[str]:
    head = ["system", *(f.head for f in FIGURES)]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(FIGURES) + "|"]
    for name in results.systems:
        cells = []
        for fig in FIGURES:
            span = results.spread(name, fig.key)
            cells.append("-" if span is None else f"{fig.fmt(span[0])} - {fig.fmt(span[1])}")
        lines.append(f"| {BY_NAME[name].label} | " + " | ".join(cells) + " |")
    return lines


def system_lines(results: Results, setup: Setup) -> list[str]:
    lines = ["| system | runs jobs at once as | bulk push | versions |", "|---|---|---|---|"]
    for name in results.systems:
        system = BY_NAME[name]
        lines.append(f"| {system.label} | {system.model} | {system.bulk} |"
                     f" {setup.versions.get(name, '')} |")
    return lines


def markdown(setup: Setup, results: Results) -> str:
    parts = [
        "# Performance",
        "",
        "<!-- Generated by `make bench` (bench/suite.py); edit bench/report.py, not this file."
        " -->",
        "",
        INTRO,
        "",
        f"Run of {setup.date}: `{setup.command}`.",
        "",
        *markdown_table(results),
        "",
        *(f"{line}  " for line in notes(results)),
        "",
        "![Medians per system](images/performance.png)",
        "",
        *targets.markdown(results),
        "",
        "## Setup",
        "",
        f"- Machine: {setup.machine}; Python {setup.python}.",
        f"- Redis: {setup.redis}.",
        f"- Sizes: {setup.sizes}.",
        f"- Load during the run: {setup.load}.",
        "",
        *system_lines(results, setup),
        "",
        "Lowest and highest value over the runs:",
        "",
        *spread_table(results),
        "",
        RUNNING,
        "",
        METHOD,
        "",
        SYSTEM_NOTES,
    ]
    return "\n".join(parts) + "\n"


INTRO = """\
`make bench` runs Sidequest, Ruby Sidekiq and the Python job systems on the same machine,
against the same private Redis, with the same job: one `INCR` on a counter in a Redis
database of its own, outside the system under test, so that completions are counted by the
bench and no system is credited for work it did not do. Each worker is one process running
10 jobs at once where the system can (its closest equivalent otherwise), at log level
WARNING, with the system's defaults otherwise; only "drain, 2 processes" runs two."""

METHOD = """\
## Method

- **single / bulk enqueue**: jobs/s of a pusher process of the system's own environment,
  timed by itself: `perform_async`-style calls one at a time, then the system's bulk API in
  batches of 1,000 (a loop where the system has none).
- **drain**: the bulk-pushed jobs, then one worker process is started; jobs/s from the first
  completion to the last (the counter is polled every 5 ms), so start-up time is not counted.
  The bench then checks that the counter holds exactly N: no job ran twice.
- **latency**: the same worker, idle after the drain; jobs are pushed one at a time after
  random gaps (the same gaps for every system in a run), each carrying its push time; the job
  records the time it started. p50 and p99 of start minus push. The pusher pushes one job
  more than it counts: its first push also opens its connection to Redis, which is set-up,
  not the worker's pick-up, so the earliest push is left out. A worker that polls Redis
  shows its polling interval here, and a long gap lets any back-off grow as it would in
  production.
- **drain +1 ms**: the drain again with the worker talking to Redis through
  `bench/latency_proxy.py`, which adds 1 ms each way, as Sidekiq's own load test does with a
  latency proxy: on loopback a round trip costs microseconds and hides how many a system
  makes per job. The counter is reached directly, so only the system's own round trips pay.
  The proxy is a Python asyncio process on the same cores; its timer adds a little to the
  asked delay (the PING figure under Setup is the round trip as measured).
- **drain, 2 processes**: the drain again, with two worker processes of 10 threads each on
  the machine at once. The machine has 2 cores, and one CPython process is bound by its
  interpreter lock (one Ruby process by its own), so a second process is how a deployment
  uses the second core. Sidequest runs `sidequest -P 2`: one command, whose supervisor forks
  two worker processes of 10 threads each. Ruby Sidekiq runs two `sidekiq` processes of 10
  threads each, started together, each the command of the drain above (Sidekiq's free
  edition has no multi-process mode of its own). As for the drain, jobs/s run from the first
  completion to the last and the counter must end at exactly N. The other systems are not
  measured here.
- **peak RSS**: resident memory of the worker's process tree, sampled every 50 ms during the
  drain (Celery prefork and Dramatiq count their pool and supervisor processes too).
- Every figure is the median of the runs; the systems take turns within each run.
  Sidequest runs from a copy of `src/` taken when the suite starts (its version line gives
  the commit), so that edits made during a run do not mix versions.
- Caveats: one machine, shared with other work (see the load line); the pushers, Redis and
  the worker share its cores, as they would on a small server. RQ's SimpleWorker runs one job
  at a time by design (RQ has no threaded worker), so its drain is not a 10-at-once figure.
  Celery runs without a result backend, and Celery's default acknowledges a task when it
  starts (a crash loses it), where Sidequest acknowledges after the job ran."""

RUNNING = """\
## Running it

```
make bench                                   # install what is missing, 3 runs, rewrite this page
make bench BENCH_ARGS="--systems sidequest,sidekiq --jobs 20000 --runs 1 --no-write"
.venv/bin/python bench/suite.py --quick      # Sidequest alone, small sizes: what `make test` runs
.venv/bin/python bench/throughput.py         # Sidequest alone against its own floors (--check)
```

Flags: `--systems` (comma list of sidequest, sidekiq, celery-threads, celery-prefork, dramatiq,
huey, rq, arq), `--jobs N` (100,000), `--runs R` (3), `--proxy-jobs` (N/10), `--latency-jobs`
(1,000), `--max-gap` (2 s), `--quick`, `--skip-install`, `--no-write`, `--logs DIR` (keep the
workers' logs). At the defaults a run takes hours, mostly the latency test (1,000 gaps of up
to 2 s per system and run); the sizes of the run above are under Setup. The Python peers are
installed on first use into `bench/.venvs/<name>` (gitignored), pinned in `bench/systems.py`;
Ruby Sidekiq comes from Debian's `ruby-sidekiq` (apt-get, when run as root)."""

SYSTEM_NOTES = """\
## Per system

- **Sidekiq**: Debian's ruby-sidekiq 6.4.1 with redis-rb 4.8, which prints a deprecation
  warning at every BRPOP of Sidekiq 6.4 (about one per job); the bench silences it
  (`Redis.silence_deprecations`), as it sets `Sidekiq.logger.level = Logger::WARN`. The job
  reaches the counter through a ConnectionPool of 10, as each Python thread gets a connection
  of its own from redis-py's pool.
- **Celery**: no result backend; `--pool prefork -c 10` is 10 child processes, all counted in
  its RSS. It has no batch push: bulk is `apply_async` in a loop holding one producer, which
  was a little faster here than `group(...).apply_async()` (also one message at a time).
- **Dramatiq**: `--skip-logging`, the bench module setting WARNING (its CLI has no level flag);
  a supervisor and one worker process. When its queue is empty it sleeps with a growing
  back-off of up to 1 s before it looks again, which shows in its latency.
- **Huey**: `-q` is WARNING. Its Redis storage blocks on the queue (BRPOP), so it picks a job
  up at once.
- **RQ**: SimpleWorker runs one job at a time in the worker process (the default Worker forks a
  child per job, slower still); RQ keeps job hashes and results for 500 s by default.
- **arq**: started with `arq.run_worker` (its CLI logs a line per job at INFO, with no flag for
  WARNING), `max_jobs=10`. By default it polls its queue every 0.5 s and takes at most
  `queue_read_limit` = 100 jobs per poll, which caps a drain near 200 jobs/s and puts its
  latency around the poll interval; it keeps results for an hour by default."""
