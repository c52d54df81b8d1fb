"""A unique job whose worker is SIGKILLed keeps its lock while the reaper puts it back, so no
identical job slips in; the lock goes when the re-run succeeds."""

from __future__ import annotations

import time

import pytest
import redis

from apps.fault_jobs import AsyncWork, Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger
from helpers import wait_for
from sidequest import Job, keys, unique


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


@pytest.mark.parametrize("job", [Work, AsyncWork], ids=["thread", "async"])
def test_a_unique_lock_goes_only_with_the_acknowledgement(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger, job: type[Job]
) -> None:
    """The moment a unique job's lock is gone, the job is acknowledged too: a SIGKILL can find
    no moment where an identical push gets in while the reaper would run this job again.
    (Released before the acknowledgement, which goes with a later fetch round, the lock was
    gone for up to 50 ms while the job still sat in the in-progress list.)"""
    victim = spawn("-c", "2")
    identity = victim.wait_registered(r)
    for attempt in range(5):  # each run has its own window; any one of them may show it
        jid = job.set(unique_for=120).perform_async(0.0)
        assert jid
        lock = keys.unique_lock(_digest_of(job, jid))
        deadline = time.monotonic() + 10
        while r.exists(lock):  # a tight poll: the window it looks for is milliseconds wide
            assert time.monotonic() < deadline, f"run {attempt}: the lock was never released"
        held = [raw for raw in r.lrange(keys.inprogress(identity), 0, -1) if jid.encode() in raw]
        assert held == [], f"run {attempt}: the lock is gone but the job is unacknowledged"
    assert ledger.done_count() == 5


def _digest_of(job: type[Job], jid: str) -> str:
    """The lock's name, computed as the push did (the job may have run already)."""
    payload = {"class": job.wire_name(), "queue": "default", "args": [0.0],
               unique.FOR: 120, "jid": jid}
    unique.stamp(payload)
    return str(payload[unique.DIGEST])
