"""A worker SIGKILLed with 50 async jobs in flight on its event loop loses none: the reaper
of a running worker puts them back and it runs them, each to the end once more."""

from __future__ import annotations

import time

import redis

from apps.fault_jobs import AsyncWork
from fault.conftest import SpawnWorker
from fault.harness import Ledger, jids
from helpers import wait_for


def test_sigkill_with_async_jobs_in_flight_loses_none(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    victim = spawn("-c", "2")
    victim.wait_registered(r)
    accepted = AsyncWork.perform_bulk([[3.0]] * 50)
    wait_for(lambda: len(ledger.counts("start")) == 50, what="50 async jobs in flight")
    rescuer = spawn("-c", "2")
    rescuer.wait_registered(r)
    victim.kill()
    killed = time.monotonic()
    wait_for(lambda: ledger.done_count() == 50, timeout=30, what="all 50 done by the rescuer")
    report = ledger.check(accepted, dead=jids(r.zrange("dead", 0, -1)))
    print(f"SIGKILL with 50 async jobs in flight: {report.text()}; "
          f"all done {time.monotonic() - killed:.1f} s after the kill")
    assert report.lost == [] and report.duplicates == {}
    assert set(report.reruns) == set(accepted)
