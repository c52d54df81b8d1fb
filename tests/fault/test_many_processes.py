"""L6: 30 worker processes (100 in the matrix, shrunk for a 2-core machine) started, given
work, and stopped with SIGTERM, twice. After each stop Redis is as before: its client count
is back to the baseline, no process is listed in ``processes`` (a clean stop removes itself,
nothing waits for a TTL), no lease, work hash or in-progress list is left, and the jobs that
were running went back to their queue: a last worker drains it and the ledger has lost none.

``sq:processes`` (the reapers' list of possible owners) is the exception, a known bug: a stop
can leave its identity there; the second test reproduces it and is an expected failure."""

from __future__ import annotations

import contextlib
import subprocess
import time

import pytest
import redis

from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, Worker, jids
from helpers import wait_for
from sidequest import connection

PROCESSES = 30
ROUNDS = 2


def stop(worker: Worker, timeout: float = 10.0) -> int | None:
    """Wait for a worker already sent TERM (a second TERM could land in its interpreter's
    finalization, where the default action kills it), then close its log."""
    with contextlib.suppress(subprocess.TimeoutExpired):  # reap() kills it: code None
        worker.proc.wait(timeout)
    code = worker.proc.returncode
    worker.reap()
    return code


def clients(r: redis.Redis) -> int:
    return int(r.info("clients")["connected_clients"])


def leftovers(r: redis.Redis) -> dict[str, list[bytes]]:
    found = {
        "processes": sorted(r.smembers("processes")),
        "leases": sorted(r.keys("sq:lease:*")),
        "in-progress lists": sorted(r.keys("sq:inprogress:*")),
        "work hashes": sorted(r.keys("*:work")) + sorted(r.keys("*:workers")),
    }
    return {name: keys for name, keys in found.items() if keys}


# Timed: thirty processes stopping at once must each finish inside its shutdown timeout, which
# on two cores busy with other tests they need not (the watchdog then kills one).
@pytest.mark.timed
def test_thirty_processes_start_and_stop_twice(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                               ledger: Ledger) -> None:
    connection.client().ping()  # this test's own pushing connection, open from here on
    baseline = clients(r)
    accepted: list[str] = []
    stale_total = 0
    for round_no in range(1, ROUNDS + 1):
        started = time.monotonic()
        workers: list[Worker] = [spawn("-c", "2", timeout=1.5) for _ in range(PROCESSES)]
        wait_for(lambda: r.scard("processes") == PROCESSES, timeout=60,
                 what=f"{PROCESSES} processes registered")
        up = time.monotonic() - started
        peak = clients(r)
        # Work for all: 2 threads each busy with a 2.5 s job, so that the stop finds jobs
        # running (pushed back to the queue at the 1.5 s shutdown timeout; the watchdog
        # would SIGKILL a process still there 1.5 s later). Thirty processes stopping at once
        # on two cores take up to about 2 s: a 0.8 s timeout left too thin a margin.
        accepted += Work.perform_bulk([[2.5]] * (2 * PROCESSES))
        expected = len(accepted) - 5
        wait_for(lambda n=expected: len(ledger.counts("start")) >= n, timeout=30,
                 what="the jobs to start")
        stopping = time.monotonic()
        for worker in workers:
            worker.term()
        codes = [stop(worker) for worker in workers]
        stopped = time.monotonic() - stopping
        wait_for(lambda: clients(r) <= baseline, timeout=10,
                 what=f"connected_clients back to {baseline}: {r.client_list()}")
        left = leftovers(r)
        # Known bug (see test_a_clean_stop_leaves_no_reaper_entry): a heartbeat that lands
        # after the stop's final requeue puts the identity back in sq:processes. Harmless as
        # long as it owns no list and holds no lease: any live reaper then drops it.
        stale = sorted(r.smembers("sq:processes"))
        print(f"L6 round {round_no}: {PROCESSES} processes registered in {up:.1f}s; "
              f"connected_clients {baseline} -> {peak} -> {clients(r)}; all stopped "
              f"{stopped:.2f}s after TERM (exit codes {sorted(set(codes), key=str)}); "
              f"queue:default holds {r.llen('queue:default')} pushed-back jobs; "
              f"left over: {left or 'nothing'}; {len(stale)} stale sq:processes entries")
        assert peak >= baseline + PROCESSES
        # 0: every job finished in time; 1: some were pushed back (Launcher.run's contract).
        assert set(codes) == {0}, codes  # graceful, even with jobs pushed back
        assert left == {}
        stale_total += len(stale)
    drainer = spawn("-c", "20")
    drainer_id = drainer.wait_registered(r)
    wait_for(lambda: ledger.done_count() >= len(accepted), timeout=60, what="the drain")
    wait_for(lambda: r.smembers("sq:processes") <= {drainer_id.encode()},
             what="the drainer's reaper to drop stale sq:processes entries")
    drainer.reap()
    report = ledger.check(accepted, dead=jids(r.zrange("dead", 0, -1)))
    print(f"L6 after {ROUNDS} rounds and a drain: {report.text()}; {stale_total} stale "
          "sq:processes entries in all, dropped by the drainer's reaper")
    assert report.lost == [] and report.dead_normal == []


def test_a_clean_stop_leaves_no_reaper_entry(spawn: SpawnWorker, sq: str,
                                             r: redis.Redis) -> None:
    """A heartbeat every millisecond makes the race above likely (a quarter to a third of the
    stops leave the entry); 8 processes stopped 3 times leave none only if it is fixed."""
    stale = 0
    for _ in range(3):
        workers = [spawn("-c", "1", heartbeat_interval=0.001, lease_ttl=1.0)
                   for _ in range(8)]
        wait_for(lambda: r.scard("processes") == 8, timeout=30,
                 what="8 processes registered")
        for worker in workers:
            worker.term()
        codes = [stop(worker) for worker in workers]
        assert codes == [0] * len(workers)
        stale += r.scard("sq:processes")
        r.delete("sq:processes")
    print(f"L6 stale sq:processes entries after 24 clean stops (heartbeat 1 ms): {stale}")
    assert stale == 0
