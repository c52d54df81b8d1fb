"""Unique jobs under process deaths, beyond the rescue in test_unique_kill.py: with no worker
left to run a SIGKILLed job, its lock expires after ``unique_for`` (the safety net); a unique
poison pill keeps its lock through its deaths and gives it back when a reaper buries it."""

from __future__ import annotations

import time

import redis

from apps.fault_jobs import Exit, Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, Supervisor
from helpers import wait_for
from sidequest import keys


def lock_holders(r: redis.Redis) -> list[bytes]:
    return [v for v in (r.get(k) for k in r.scan_iter(keys.UNIQUE_PREFIX + "*")) if v]


def test_lock_expires_after_unique_for_when_no_worker_runs_the_job(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    victim = spawn("-c", "2")
    victim.wait_registered(r)
    pushed = time.monotonic()
    jid = Work.set(unique_for=3).perform_async(30.0)
    assert jid
    wait_for(lambda: ledger.counts("start").get(jid) == 1, what="the job running")
    victim.kill()
    assert Work.set(unique_for=3).perform_async(30.0) is None
    assert lock_holders(r) == [jid.encode()]
    wait_for(lambda: not lock_holders(r), timeout=10, what="the lock to expire")
    assert time.monotonic() - pushed >= 2.9
    again = Work.set(unique_for=3).perform_async(30.0)
    assert again and again != jid


def test_poison_pill_gives_its_lock_back_when_buried(spawn: SpawnWorker, sq: str,
                                                    r: redis.Redis, ledger: Ledger) -> None:
    pill = Exit.set(unique_for=120).perform_async()
    assert pill
    supervisor = Supervisor(lambda: spawn("-c", "2"))
    try:
        wait_for(lambda: ledger.counts("start").get(pill, 0) >= 1, timeout=20,
                 what="a first death")
        assert Exit.set(unique_for=120).perform_async() is None  # being recovered: locked
        wait_for(lambda: r.zcard("dead") == 1, timeout=40, what="the pill in the dead set")
        wait_for(lambda: not lock_holders(r), what="the buried pill's lock released")
    finally:
        supervisor.stop()
    assert pill.encode() in r.zrange("dead", 0, 0)[0]
    assert Exit.set(unique_for=120).perform_async() not in (None, pill)
