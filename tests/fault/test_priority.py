"""L4: queue priority under load, and the CPU an idle worker burns.

- strict (``-q high -q low``, no weights): with a large backlog in ``low``, a job of ``low``
  starts only while ``high`` is empty; the ledger's start order shows it.
- weighted (``-q high,3 -q low,1``), both with a backlog: high:low over the first 10,000
  starts is 3:1 within +-10 %, with one job per fetch and at -c 10 with the prefetch (each
  job of a fetched batch draws its queue); ``low`` is never starved.
- idle: a worker at -c 25 with empty queues uses < 5 % of a core (psutil, over 3 s), with
  one queue (blocking BLMOVE) and with several (woken by Redis's invalidation messages),
  at the production timers: the FAST test timers poll 25 times more often; and it sends
  Redis fewer than 20 commands a second (Redis's own command count over 10 s).
"""

from __future__ import annotations

import itertools
import time

import psutil
import pytest
import redis

from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger
from helpers import wait_for
from sidequest.config import Config

CONCURRENCY = 10


def first_starts(ledger: Ledger) -> list[str]:
    """Jids in the order of their first start."""
    return list(dict.fromkeys(e[1] for e in ledger.entries() if e[0] == "start"))


def starts_by_queue(ledger: Ledger, high: set[str]) -> list[tuple[float, str]]:
    """(time, "high"|"low") of every first start, in the ledger's (append) order."""
    seen: set[str] = set()
    out = []
    for event, jid, _, _, at in ledger.entries():
        if event == "start" and jid not in seen:
            seen.add(jid)
            out.append((at, "high" if jid in high else "low"))
    return out


def test_strict_priority_runs_low_only_when_high_is_empty(spawn: SpawnWorker, sq: str,
                                                          r: redis.Redis,
                                                          ledger: Ledger) -> None:
    Work.set(queue="low").perform_bulk([[0.001]] * 4000)
    high = Work.set(queue="high").perform_bulk([[0.001]] * 300)
    worker = spawn("-c", str(CONCURRENCY), "-q", "high", "-q", "low")
    wait_for(lambda: ledger.done_count() >= 1300, timeout=30, what="the first 1,300 jobs")
    # A second burst into high while low's backlog drains: low must yield at once.
    burst = Work.set(queue="high").perform_bulk([[0.001]] * 300)
    burst_at = time.time()  # the burst is in Redis (one MULTI)
    wait_for(lambda: ledger.done_count() >= 4600, timeout=60, what="all 4,600 jobs")
    assert worker.alive
    order = starts_by_queue(ledger, set(high) | set(burst))
    labels = [label for _, label in order]
    index = {jid: i for i, jid in enumerate(first_starts(ledger))}
    # Phase 1: before the burst, every high job starts before all but a handful of lows
    # (jobs fetched in the same round as high's last ones).
    first_high = labels[: labels.index("high", 0) + 1]
    last_initial_high = max(index[jid] for jid in high)
    lows_before = labels[:last_initial_high].count("low")
    # Phase 2: after the burst lands, low jobs may still start only while the high ones are
    # not fetched yet: the running ones, the held ones taken until the fetcher refills (at
    # half the buffer), and a fetch already on its way when the burst landed. Together at
    # most concurrency + prefetch. Quiet runs start 6-43; a run with the CPU contended (two
    # busy loops beside it) 42-70, so the bound is the worst case, not a quiet run's figure.
    # Once fetched, a high job goes ahead of every held low one (worker/buffer.py).
    bound = CONCURRENCY + Config(concurrency=CONCURRENCY).prefetch_count
    last_burst_high = max(index[jid] for jid in burst)
    lows_during_burst = sum(1 for at, label in order[:last_burst_high]
                            if label == "low" and at >= burst_at)
    print(f"L4 strict: high first ({len(first_high)} start(s) to the first high); "
          f"{lows_before} low jobs started before the 300 initial high ones finished starting;"
          f" {lows_during_burst} low jobs started after a burst of 300 high landed and before "
          f"its last one started (bound {bound})")
    assert lows_before <= 2 * CONCURRENCY
    assert lows_during_burst <= bound
    assert r.llen("queue:low") == 0 and r.llen("queue:high") == 0


@pytest.mark.parametrize(("concurrency", "prefetch"), [
    # One job per fetch: every start is one draw of the weighted order (Sidekiq's: each queue
    # listed weight times, shuffled, the first non-empty wins), so over 10,000 starts the
    # ratio itself must be 3:1 within +-10 % (2.7-3.3, about 4 standard deviations).
    (1, 0),
    # Under load as deployed: a fetch brings up to concurrency + prefetch jobs, and each job
    # of the batch draws its own queue, so the ratio holds as tightly as with one job per
    # fetch (it did not when a whole batch came from the one queue it drew).
    (CONCURRENCY, None),
])
def test_weighted_priority_follows_weights(  # noqa: PLR0917 - pytest passes fixtures
        concurrency: int, prefetch: int | None, spawn: SpawnWorker, sq: str, r: redis.Redis,
        ledger: Ledger) -> None:
    first_n = 10_000
    high = Work.set(queue="high").perform_bulk([[0]] * (first_n + 1000))
    Work.set(queue="low").perform_bulk([[0]] * (first_n + 1000))
    config = {} if prefetch is None else {"prefetch": prefetch}
    worker = spawn("-c", str(concurrency), "-q", "high,3", "-q", "low,1", **config)
    wait_for(lambda: ledger.done_count() >= first_n, timeout=60, what=f"{first_n} jobs")
    worker.reap()
    labels = [label for _, label in starts_by_queue(ledger, set(high))][:first_n]
    n_high, n_low = labels.count("high"), labels.count("low")
    share, ratio = n_high / len(labels), n_high / max(1, n_low)
    runs = sum(1 for a, b in itertools.pairwise(labels) if a != b) + 1
    print(f"L4 weighted 3:1 at -c {concurrency} (prefetch {prefetch}): of the first "
          f"{len(labels)} starts, {n_high} high and {n_low} low: high's share {share:.3f} "
          f"(expected 0.750), ratio {ratio:.2f}; {runs} runs of one queue")
    assert len(labels) == first_n
    assert n_low > 0  # no starvation
    assert 2.7 <= ratio <= 3.3, f"ratio {ratio:.2f} is not 3 +- 10 %"


#: The production defaults (sidequest.config.Config) for the timers FAST shrinks.
PRODUCTION = {"heartbeat_interval": 5.0, "lease_ttl": 20.0, "reaper_interval": 5.0,
              "poll_interval": 5.0, "fetch_timeout": 2.0, "idle_wait": 0.1, "timeout": 25.0}


@pytest.mark.timed
def test_idle_worker_uses_almost_no_cpu(spawn: SpawnWorker, sq: str, r: redis.Redis) -> None:
    shapes = {
        "one queue": ("-q", "default"),
        "3 weighted queues": ("-q", "critical,3", "-q", "default,2", "-q", "low,1"),
        "3 strict queues": ("-q", "critical", "-q", "default", "-q", "low"),
    }
    workers = {name: spawn("-c", "25", *queues, **PRODUCTION) for name, queues in shapes.items()}
    for worker in workers.values():
        worker.wait_registered(r)
    Work.perform_async(0)  # one job each way through the idle path, then idle again
    time.sleep(1.0)  # settle: imports done, first beats sent, fetchers parked in Redis
    procs = {name: psutil.Process(w.pid) for name, w in workers.items()}
    for proc in procs.values():
        proc.cpu_percent(None)
    time.sleep(3.0)  # the measurement window
    usage = {name: proc.cpu_percent(None) for name, proc in procs.items()}
    print("L4 idle CPU at -c 25 over 3 s: " + "; ".join(f"{name} {pct:.1f} %"
                                                          for name, pct in usage.items()))
    for name, pct in usage.items():
        assert pct < 5.0, f"{name}: an idle worker used {pct:.1f} % CPU"


@pytest.mark.timed
@pytest.mark.parametrize("queues", [("-q", "default"),
                                    ("-q", "critical", "-q", "default", "-q", "low")])
def test_idle_worker_sends_redis_few_commands(
        spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger,
        queues: tuple[str, ...]) -> None:
    worker = spawn("-c", "25", *queues, **PRODUCTION)
    worker.wait_registered(r)
    Work.perform_async(0)  # one job through the idle path, then idle again
    wait_for(lambda: ledger.done_count() >= 1, what="the job done")
    window = 10.0  # two heartbeats, reaper and scheduler passes at the production timers
    before = int(r.info("stats")["total_commands_processed"])
    time.sleep(window)  # the measurement window
    after = int(r.info("stats")["total_commands_processed"])
    rate = (after - before - 1) / window  # less our own INFO
    print(f"L4 idle Redis commands at -c 25 with {len(queues) // 2} queue(s): {rate:.1f}/s")
    assert rate < 20, f"an idle worker sent Redis {rate:.1f} commands/s"
