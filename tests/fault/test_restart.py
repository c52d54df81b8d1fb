"""F1: the only worker is SIGKILLed at ~30 % done and restarted; the restarted process's own
reaper recovers the dead process's in-progress list. Nothing is lost, and only what was in
that list at the kill runs again, at most once more."""

from __future__ import annotations

import time

import redis

from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, jids
from helpers import FAST, wait_for

JOBS = 1000
SECONDS = 0.05
CONCURRENCY = 50
# The dead process's lease expires at most lease_ttl after the kill; the new process's reaper
# looks every reaper_interval * (0.5 .. 1.5). Its start-up (imports, first beat) is on top.
RECOVERY_BOUND = FAST["lease_ttl"] + 1.5 * FAST["reaper_interval"]


def test_sigkill_the_only_worker_then_restart(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                              ledger: Ledger) -> None:
    victim = spawn("-c", str(CONCURRENCY))
    victim_id = victim.wait_registered(r)
    accepted = Work.perform_bulk([[SECONDS]] * JOBS)
    wait_for(lambda: ledger.done_count() >= JOBS * 3 // 10, timeout=30, what="30 % done")
    victim.kill()
    killed = time.monotonic()
    # SIGKILL freezes the list: exactly these jobs were "in flight" as far as Redis knows:
    # running, prefetched (not started), or finished with their acknowledgement not yet sent.
    in_flight = jids(r.lrange(f"sq:inprogress:{victim_id}", 0, -1))
    entries = ledger.entries()
    done_before = {e[1] for e in entries if e[0] == "done"}
    running = {e[1] for e in entries if e[0] == "start"} - done_before
    restarted = spawn("-c", str(CONCURRENCY))
    orphans = set(in_flight) | running

    def rerun_started() -> bool:
        return any(e[0] == "start" and e[3] == restarted.pid and e[1] in orphans
                   for e in ledger.entries())

    wait_for(rerun_started, timeout=RECOVERY_BOUND + 15, what="the first re-run")
    recovery = time.monotonic() - killed
    wait_for(lambda: ledger.done_count() >= JOBS, timeout=60, what="all 1,000 done")
    wait_for(lambda: not r.keys("sq:inprogress:*"), what="no job left in progress")
    report = ledger.check(accepted, dead=jids(r.zrange("dead", 0, -1)))
    print(f"F1 SIGKILL at {len(done_before)}/{JOBS} done, restart: {report.text()}; "
          f"{len(in_flight)} in the in-progress list at the kill ({len(running)} running, "
          f"{len(set(in_flight) & done_before)} finished but not acknowledged); first re-run "
          f"{recovery:.2f}s after the kill")
    assert report.lost == [] and report.dead_normal == []
    assert report.done == JOBS
    # Running or prefetched: concurrency + prefetch (default: concurrency). On top come the
    # jobs that had finished while the fetcher's round trip (which carries their
    # acknowledgements) was under way: as many as a loaded host let finish meanwhile.
    assert len(set(in_flight) - done_before) <= 2 * CONCURRENCY
    # Only jobs that were in flight at the kill ran again, each at most once more.
    assert set(report.reruns) <= set(in_flight), set(report.reruns) - set(in_flight)
    assert set(report.duplicates) <= set(in_flight)
    assert all(n == 2 for n in report.reruns.values()), report.reruns
    assert all(n == 2 for n in report.duplicates.values()), report.duplicates
    assert running <= set(in_flight)  # a job that was running was in the list
    assert running <= set(report.reruns)  # and it was run again (0 lost)
    assert not r.exists(f"sq:inprogress:{victim_id}")
    assert recovery < RECOVERY_BOUND + 2.0, f"first re-run {recovery:.2f}s after the kill"
