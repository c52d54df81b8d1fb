"""Unique jobs when a real ``sidequest`` worker process is SIGKILLed mid-job: the lock stays
while a reaper requeues the job, so no duplicate slips in; with no worker left to run it,
the lock expires after ``unique_for`` (the safety net) and the job can be pushed again; a
poison pill buried in the dead set by a reaper releases its lock."""

from __future__ import annotations

import time

import redis

from apps.fault_jobs import Exit, Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, Supervisor
from helpers import wait_for


def lock_holders(r: redis.Redis) -> list[str]:
    values = [r.get(k) for k in r.scan_iter("sq:unique:*")]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values if v is not None]


def started_in(ledger: Ledger, jid: str, pid: int) -> bool:
    return any(e[0] == "start" and e[1] == jid and e[3] == pid for e in ledger.entries())


def test_lock_kept_while_the_reaper_requeues(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                             ledger: Ledger) -> None:
    victim = spawn("-c", "2")
    victim.wait_registered(r)
    jid = Work.set(unique_for=60).perform_async(30.0)
    assert jid is not None
    wait_for(lambda: started_in(ledger, jid, victim.pid), what="the job running in the victim")
    victim.kill()
    # The rescuer re-runs it without sleeping, so it succeeds at once and releases the lock.
    rescuer = spawn("-c", "2", env={"FAULT_NO_SLEEP": "1"})
    attempts, deadline = 0, time.monotonic() + 30
    while not started_in(ledger, jid, rescuer.pid):
        # Killed, waiting for its lease to lapse, requeued, fetched: locked all along.
        assert Work.set(unique_for=60).perform_async(30.0) is None
        assert lock_holders(r) == [jid]
        attempts += 1
        assert time.monotonic() < deadline, f"the rescuer never ran the job:\n{rescuer.log()}"
        time.sleep(0.02)  # pacing the duplicate pushes, not a synchronisation
    assert attempts > 10  # the window covered the lease lapse and the requeue
    wait_for(lambda: not lock_holders(r), what="the lock released by the rescued run")
    assert ledger.counts("start")[jid] == 2 and ledger.counts("done")[jid] == 1
    assert r.llen("queue:default") == 0


def test_lock_expires_after_unique_for_when_no_worker_runs_the_job(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    victim = spawn("-c", "2")
    victim.wait_registered(r)
    pushed = time.monotonic()
    jid = Work.set(unique_for=3).perform_async(30.0)
    assert jid is not None
    wait_for(lambda: started_in(ledger, jid, victim.pid), what="the job running in the victim")
    victim.kill()
    assert Work.set(unique_for=3).perform_async(30.0) is None
    assert lock_holders(r) == [jid]
    wait_for(lambda: not lock_holders(r), timeout=10, what="the lock to expire")
    assert time.monotonic() - pushed >= 2.9
    again = Work.set(unique_for=3).perform_async(30.0)
    assert again is not None and again != jid


def test_poison_pill_releases_its_lock_when_buried(spawn: SpawnWorker, sq: str,
                                                  r: redis.Redis, ledger: Ledger) -> None:
    pill = Exit.set(unique_for=120).perform_async()
    assert pill is not None
    supervisor = Supervisor(lambda: spawn("-c", "2"))
    try:
        wait_for(lambda: ledger.counts("start")[pill] >= 1, timeout=20, what="a first death")
        assert Exit.set(unique_for=120).perform_async() is None  # recovering: still locked
        wait_for(lambda: r.zcard("dead") == 1, timeout=40, what="the pill in the dead set")
    finally:
        supervisor.stop()
    assert pill.encode() in r.zrange("dead", 0, 0)[0]
    assert not lock_holders(r)  # buried and released in one transaction
    assert Exit.set(unique_for=120).perform_async() not in (None, pill)
