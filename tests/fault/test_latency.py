"""F10: a worker drains its queue through the fault proxy with 1 ms and 10 ms added each way
(Sidekiq's sidekiqload LATENCY mode); L3: push-to-start latency at about a tenth of the
maximum throughput, with one worker that is mostly idle.

Throughput and latency are printed, never asserted beyond sanity: the machine is shared.
"""

from __future__ import annotations

import statistics
import time

import pytest
import redis

from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, jids
from fault.proxy import FaultProxy
from helpers import wait_for

# Timed: its figures and its no-timeout check mean something only on an otherwise quiet machine.
pytestmark = pytest.mark.timed

#: What a worker logs when a Redis call fails or times out (none is expected here).
ERROR_MARKS = ("Timeout", "timed out", "Redis error", "backing off", "Traceback")


@pytest.mark.parametrize(("latency", "jobs"), [(0.0, 2000), (0.001, 2000), (0.010, 1000)])
def test_drain_through_latency(  # noqa: PLR0917 - pytest passes fixtures
        latency: float, jobs: int, proxy: FaultProxy,
        spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger) -> None:
    accepted = Work.perform_bulk([[0]] * jobs)  # straight to Redis, before the worker starts
    proxy.latency = latency
    worker = spawn("-c", "10", url=proxy.url())
    wait_for(lambda: ledger.done_count() >= jobs, timeout=60, what=f"{jobs} jobs done")
    wait_for(lambda: not r.keys("sq:inprogress:*"), what="in-progress list empty")
    entries = ledger.entries()
    first = min(e[4] for e in entries if e[0] == "start")
    last = max(e[4] for e in entries if e[0] == "done")
    report = ledger.check(accepted, dead=jids(r.zrange("dead", 0, -1)))
    errors = [line for line in worker.log(10_000).splitlines()
              if any(mark in line for mark in ERROR_MARKS)]
    print(f"F10 latency {latency * 1000:g} ms each way: {jobs} jobs in {last - first:.2f}s = "
          f"{jobs / (last - first):,.0f} jobs/s; {report.text()}; "
          f"{sum(proxy.commands.values())} commands through the proxy; "
          f"{len(errors)} error lines")
    assert report.lost == [] and report.reruns == {} and report.dead_normal == []
    assert errors == [], "\n".join(errors[:10])
    assert worker.alive


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_push_to_start_latency_at_a_tenth_of_max_throughput(
        spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger) -> None:
    worker = spawn("-c", "10")
    worker.wait_registered(r)
    # The maximum: a backlog drained by this worker (no-op jobs).
    backlog = 3000
    Work.perform_bulk([[0]] * backlog)
    wait_for(lambda: ledger.done_count() >= backlog, timeout=60, what="the calibration backlog")
    entries = ledger.entries()
    span = (max(e[4] for e in entries if e[0] == "done")
            - min(e[4] for e in entries if e[0] == "start"))
    maximum = backlog / span
    rate = maximum / 10
    # The measurement: one job at a time, paced at a tenth of that, for about 2 s.
    count = max(200, int(rate * 2))
    pushed: dict[str, float] = {}
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the pacing of the load, not a synchronisation
        at = time.time()
        pushed[Work.perform_async(0)] = at
    elapsed = time.monotonic() - started
    wait_for(lambda: set(pushed) <= set(ledger.counts("done")), timeout=30,
             what="every paced job done")
    starts = {e[1]: e[4] for e in ledger.entries() if e[0] == "start" and e[1] in pushed}
    waits = [starts[jid] - at for jid, at in pushed.items()]
    p50, p99 = percentile(waits, 0.50), percentile(waits, 0.99)
    print(f"L3: max {maximum:,.0f} jobs/s (a {backlog}-job backlog, -c 10); {count} jobs paced "
          f"at {count / elapsed:,.0f}/s: push-to-start p50 {p50 * 1000:.2f} ms, p99 "
          f"{p99 * 1000:.2f} ms, max {max(waits) * 1000:.1f} ms, mean "
          f"{statistics.fmean(waits) * 1000:.2f} ms")
    assert min(waits) > -0.01  # the same clock on both sides: a start precedes no push
    assert p99 < 1.0, f"p99 push-to-start {p99:.3f}s"
