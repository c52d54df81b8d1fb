"""The targets Sidequest holds itself to in this bench, each checked against a run's medians.

Each target is a ratio or a bound within the same run, never a figure from another day:
the machine is shared, and only ratios between systems measured side by side mean much.
A target whose systems were not in the run (``--systems``) is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.systems import BY_NAME

if TYPE_CHECKING:
    from bench.report import Results

BASE = "sidequest"
RUBY = "sidekiq"


@dataclass(frozen=True)
class Check:
    target: str
    measured: str
    met: bool


def _ratio(results: Results, key: str, other: str, other_key: str | None = None) -> float | None:
    """Sidequest's median over ``other``'s (for ``other_key``, default the same figure)."""
    mine = results.median(BASE, key)
    theirs = results.median(other, other_key or key)
    if mine is None or not theirs:
        return None
    return mine / theirs


def _against_sidekiq(results: Results) -> Iterator[Check]:
    ruby = BY_NAME[RUBY].label
    for key, what, factor in (("drain", "drain", 1.0), ("proxy", "drain through the 1 ms proxy",
                              3.0), ("bulk", "bulk enqueue", 1.0)):
        ratio = _ratio(results, key, RUBY)
        if ratio is not None:
            times = "as fast as" if factor == 1.0 else f"{factor:g}x"
            yield Check(f"{what}: at least {times} {ruby}",
                        f"{ratio:.2f}x{_out_of_reach(results, key, factor)}", ratio >= factor)
    p50, theirs = results.median(BASE, "p50_ms"), results.median(RUBY, "p50_ms")
    if p50 is not None and theirs is not None:
        yield Check(f"latency p50 no worse than {ruby}'s", f"{p50:.1f} ms vs {theirs:.1f} ms",
                    p50 <= theirs)
    cpu, ruby_cpu = results.median(BASE, "cpu_us"), results.median(RUBY, "cpu_us")
    if cpu is not None and ruby_cpu is not None:
        yield Check(f"worker CPU per drained job at most {ruby}'s",
                    f"{cpu:.0f} us vs {ruby_cpu:.0f} us", cpu <= ruby_cpu)
    own, ruby_own = results.median(BASE, "own_us"), results.median(RUBY, "own_us")
    if own is not None and ruby_own is not None:
        # The same, less each job's own INCR through its language's client: what the
        # systems themselves spend, apart from the cost of redis-py against Ruby's client.
        yield Check(f"the system's own CPU per drained job at most {ruby}'s",
                    f"{own:.0f} us vs {ruby_own:.0f} us", own <= ruby_own)
    two, ruby_two = results.median(BASE, "drain2"), results.median(RUBY, "drain2")
    if two is not None and ruby_two:
        yield Check(f"-P 2 faster than two {ruby} processes", f"{two / ruby_two:.2f}x",
                    two > ruby_two)


def _out_of_reach(results: Results, key: str, factor: float) -> str:
    """A note when a target through the proxy asks for more than Sidequest drains with no
    proxy at all in the same run: the proxy only adds waits, so on that machine the target
    is beyond what fewer round trips can give, and only less CPU per job would reach it."""
    theirs, direct = results.median(RUBY, key), results.median(BASE, "drain")
    if key != "proxy" or theirs is None or direct is None or factor * theirs <= direct:
        return ""
    return (f" ({factor:g}x is {factor * theirs:,.0f} jobs/s, above Sidequest's drain without"
            f" the proxy, {direct:,.0f})")


def _against_peers(results: Results) -> Iterator[Check]:
    for name in results.systems:
        if name in (BASE, RUBY):
            continue
        ratio = _ratio(results, "drain", name)
        if ratio is not None:
            yield Check(f"drain: at least 4x {BY_NAME[name].label}", f"{ratio:.1f}x",
                        ratio >= 4.0)


def _own(results: Results) -> Iterator[Check]:
    p99 = results.median(BASE, "p99_ms")
    if p99 is not None:
        yield Check("latency p99 under 2 ms (idle, one queue)", f"{p99:.1f} ms", p99 < 2.0)
    involuntary = results.median(BASE, "involuntary")
    if involuntary is not None:
        yield Check("under one involuntary context switch per drained job",
                    f"{involuntary:.2f}", involuntary < 1.0)
    rss = results.median(BASE, "rss_mb")
    if rss is not None:
        yield Check("peak RSS at 10 threads under 50 MB", f"{rss:.0f} MB", rss < 50.0)
    ratio = _ratio(results, "drain2", BASE, "drain")
    if ratio is not None:
        yield Check("-P 2 faster than -P 1", f"{ratio:.2f}x", ratio > 1.0)


SECTIONS: tuple[Callable[[Results], Iterator[Check]], ...] = (
    _against_sidekiq, _against_peers, _own)


def checks(results: Results) -> list[Check]:
    return [check for section in SECTIONS for check in section(results)]


def markdown(results: Results) -> list[str]:
    rows = checks(results)
    if not rows:
        return []
    lines = ["## Targets", "",
             "Each target is checked against the medians of this run (ratios are Sidequest's"
             " figure over the other system's).", "",
             "| target | measured | met |", "|---|---:|---|"]
    lines += [f"| {c.target} | {c.measured} | {'yes' if c.met else 'no'} |" for c in rows]
    lines += ["", "An idle worker's cost (under 1 % of a core and under 20 Redis commands a"
              " second at `-c 25`, one queue or several) is checked by"
              " `tests/fault/test_priority.py`, and latency when busy or with several queues"
              " by `bench/latency.py`."]
    return lines
