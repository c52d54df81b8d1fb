"""F2/F3: SIGKILLed workers lose nothing; their jobs are recovered by workers already running."""

from __future__ import annotations

import random
import time

import redis

from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, jids
from helpers import FAST, wait_for

# The reaper sleeps reaper_interval * (0.5 .. 1.5) between passes.
RECOVERY_BOUND = FAST["lease_ttl"] + 1.5 * FAST["reaper_interval"]


def test_sigkill_jobs_recovered_by_running_worker(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                                  ledger: Ledger) -> None:
    victim = spawn("-c", "20")
    victim_id = victim.wait_registered(r)
    accepted = Work.perform_bulk([[2.0]] * 20)
    wait_for(lambda: len(ledger.counts("start")) == 20, what="20 jobs running in the victim")
    rescuer = spawn("-c", "20")
    rescuer.wait_registered(r)
    victim.kill()
    killed = time.monotonic()

    def restarted() -> bool:
        return sum(1 for e in ledger.entries() if e[0] == "start" and e[3] == rescuer.pid) == 20

    wait_for(restarted, timeout=RECOVERY_BOUND + 5, what="the rescuer to re-run the 20 jobs")
    recovery = time.monotonic() - killed
    wait_for(lambda: ledger.done_count() == 20, timeout=10, what="all 20 done")
    report = ledger.check(accepted, dead=jids(r.zrange("dead", 0, -1)))
    print(f"SIGKILL with 20 in flight: {report.text()}; re-run in {recovery:.2f}s")
    assert report.lost == [] and report.duplicates == {}
    assert set(report.reruns) == set(accepted) and set(report.reruns.values()) == {2}
    # Lease TTL + reaper interval, plus a second for a loaded machine.
    assert recovery < RECOVERY_BOUND + 1.0, f"recovery took {recovery:.2f}s"
    assert not r.exists(f"sq:inprogress:{victim_id}")


def test_chaos_loop_loses_nothing(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                  ledger: Ledger) -> None:
    """3 workers, 10,000 short jobs, a random worker SIGKILLed and replaced every ~1 s."""
    rng = random.Random(1234)
    workers = [spawn("-c", "10") for _ in range(3)]
    for worker in workers:
        worker.wait_registered(r)
    # 0-50 ms, ~22 ms on average: about 8 s for 30 threads, long enough for several kills.
    durations = (0, 0.01, 0.02, 0.03, 0.05)
    accepted = Work.perform_bulk([[rng.choice(durations)] for _ in range(10_000)])
    kills = 0
    deadline = time.monotonic() + 90
    while ledger.done_count() < 10_000 and time.monotonic() < deadline:
        # The fault's rhythm, not a synchronisation: one kill every 0.5-1 s.
        time.sleep(rng.uniform(0.5, 1.0))
        if ledger.done_count() >= 9_500:
            break  # let the tail drain with whoever is alive
        i = rng.randrange(3)
        workers[i].kill()
        kills += 1
        workers[i] = spawn("-c", "10")
    wait_for(lambda: ledger.done_count() + r.zcard("dead") >= 10_000, timeout=60,
             what="every job done or dead")
    wait_for(lambda: not r.keys("sq:inprogress:*"), timeout=10,
             what="no in-progress list left behind")
    dead = jids(r.zrange("dead", 0, -1))
    report = ledger.check(accepted, dead=dead)
    print(f"chaos: {kills} kills; {report.text()}")
    assert kills >= 3
    assert report.lost == [] and len(report.reruns) > 0
    # A job runs twice only if it was in flight at a kill: at most 10 threads' worth per kill
    # (plus the prefetched ones, which re-run after their recovery too).
    # Each kill re-runs at most its 10 running jobs, plus jobs that had finished but whose
    # acknowledgement had not been sent yet (those also show as done twice).
    assert len(report.reruns) <= kills * 10 + len(report.duplicates)
    assert r.llen("queue:default") == 0
