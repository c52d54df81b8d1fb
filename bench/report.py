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
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]

from bench import install, targets
from bench.harness import ROOT, BenchError, PrivateRedis, cpu_model, load_text, machine_text
from bench.prose import COST_TEXT, INTRO, METHOD, RUNNING, SYSTEM_NOTES
from bench.systems import BY_NAME, SYSTEMS, System

DOC = ROOT / "docs" / "performance.md"
IMAGE = ROOT / "docs" / "images" / "performance.png"
BASE = "sidequest"
NOT_MEASURED = "-"
SINGLE_MAX = 10_000  # single pushes are 10x slower than bulk; the rate settles well before


@dataclass(frozen=True)
class Options:
    """What the suite's command line asked for (bench/suite.py)."""

    systems: tuple[str, ...]
    jobs: int
    proxy_jobs: int
    latency_jobs: int
    max_gap: float
    runs: int
    delay_ms: float
    seed: int
    quick: bool
    install: bool
    write: bool
    logs: Path | None

    @property
    def single(self) -> int:
        return min(self.jobs, SINGLE_MAX)


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
    # What each drained job cost (bench/cost.py); None where it was not measured.
    cpu_us: float | None = None
    voluntary: float | None = None
    involuntary: float | None = None
    redis_us: float | None = None
    # The job's own work alone, one thread, no system around it (bench/agents/job_alone.py).
    job_us: float | None = None

    @property
    def own_us(self) -> float | None:
        """What the system itself spends per drained job: its worker's CPU less the job's."""
        if self.cpu_us is None or self.job_us is None:
            return None
        return self.cpu_us - self.job_us


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
#: Why a system drains as fast as it does: the cost of one job in the drain, per system.
COSTS = (
    Figure("cpu_us", "worker CPU", "us/job", higher_is_better=False),
    Figure("voluntary", "voluntary switches", "/job", higher_is_better=False, decimals=2),
    Figure("involuntary", "involuntary switches", "/job", higher_is_better=False, decimals=2),
    Figure("redis_us", "Redis CPU", "us/job", higher_is_better=False),
    Figure("job_us", "the job alone", "us/job", higher_is_better=False),
    Figure("own_us", "the system's own CPU", "us/job", higher_is_better=False),
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


def rows(results: Results, figures: Sequence[Figure] = FIGURES) -> list[list[str]]:
    head = ["system", *(f.head for f in figures)]
    body = [[BY_NAME[name].label, *(cell(results, name, f) for f in figures)]
            for name in results.systems]
    return [head, *body]


def text_table(results: Results, figures: Sequence[Figure] = FIGURES) -> list[str]:
    table = rows(results, figures)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            for row in table]


def markdown_table(results: Results, figures: Sequence[Figure] = FIGURES) -> list[str]:
    table = rows(results, figures)
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
                      *text_table(results), "", *notes(results), "",
                      f"Cost per drained job ({cpu_model()}):", *text_table(results, COSTS)])


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


def spread_table(results: Results, figures: Sequence[Figure] = FIGURES) -> list[str]:
    head = ["system", *(f.head for f in figures)]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(figures) + "|"]
    for name in results.systems:
        cells = []
        for fig in figures:
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
        f"Run of {setup.date} on {cpu_model()}: `{setup.command}`.",
        "",
        *markdown_table(results),
        "",
        *(f"{line}  " for line in notes(results)),
        "",
        "### What a drained job costs",
        "",
        COST_TEXT,
        "",
        *markdown_table(results, COSTS),
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
        *spread_table(results, COSTS),
        "",
        RUNNING,
        "",
        METHOD,
        "",
        SYSTEM_NOTES,
    ]
    return "\n".join(parts) + "\n"
