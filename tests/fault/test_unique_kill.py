"""A unique job whose worker is SIGKILLed keeps its lock while the reaper puts it back, so no
identical job slips in; the lock goes when the re-run succeeds."""

from __future__ import annotations

import redis

from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger
from helpers import wait_for
from sidequest import keys


def test_sigkilled_unique_job_keeps_its_lock_until_its_rerun_succeeds(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    victim = spawn("-c", "2")
    victim.wait_registered(r)
    jid = Work.set(unique_for=120).perform_async(2.0)
    assert jid
    wait_for(lambda: ledger.counts("start").get(jid) == 1, what="the unique job to start")
    victim.kill()
    assert Work.set(unique_for=120).perform_async(2.0) is None, "killed, still unique"
    (lock,) = r.keys(keys.UNIQUE_PREFIX + "*")
    assert r.get(lock) == jid.encode()
    rescuer = spawn("-c", "2")
    rescuer.wait_registered(r)
    wait_for(lambda: ledger.counts("start").get(jid) == 2, timeout=15,
             what="the reaper to put the job back and the rescuer to start it")
    assert Work.set(unique_for=120).perform_async(2.0) is None, "re-running, still unique"
    wait_for(lambda: ledger.done_count() == 1, timeout=15, what="the re-run to finish")
    wait_for(lambda: not r.exists(lock), what="the lock to go with the success")
    assert Work.set(unique_for=120).perform_async(2.0)
