"""After a Redis outage longer than its lease, a worker fetches again only once its heartbeat
has renewed the lease. It fetched at once, while the lease was still gone, and a peer's
reaper, taking it for dead, put those very jobs back: they ran on both workers."""

from __future__ import annotations

import time

import redis

from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger
from fault.proxy import FaultProxy
from helpers import wait_for

TIMERS = {"heartbeat_interval": 2.0, "lease_ttl": 4.0}


def test_a_worker_back_from_a_long_outage_fetches_after_renewing_its_lease(
        proxy: FaultProxy, spawn: SpawnWorker, sq: str, r: redis.Redis,
        ledger: Ledger) -> None:
    env = {"FAULT_SOCKET_TIMEOUT": "1"}
    cut_off = spawn("-c", "4", url=proxy.url(), env=env, **TIMERS)
    peer = spawn("-c", "4", env=env, **TIMERS)
    cut_off.wait_registered(r)
    peer.wait_registered(r)
    accepted = Work.perform_bulk([[0.05]] * 1500)
    wait_for(lambda: ledger.done_count() >= 50, what="50 jobs done")
    proxy.blackhole(True)
    proxy.reset_all()
    time.sleep(TIMERS["lease_ttl"] + 2)  # the fault: an outage longer than the lease
    proxy.blackhole(False)
    healed = time.time()
    wait_for(lambda: ledger.done_count() >= 1500, timeout=60, what="all 1,500 done")
    starts = [entry for entry in ledger.entries() if entry[0] == "start"]
    after = {entry[1] for entry in starts if entry[3] == cut_off.pid and entry[4] > healed}
    by_peer = {entry[1] for entry in starts if entry[3] == peer.pid}
    print(f"{len(after)} jobs started on the cut-off worker after the heal; "
          f"{len(after & by_peer)} of them also on its peer")
    assert after, "the cut-off worker took work again"
    assert not after & by_peer
    assert set(accepted) <= set(ledger.counts("done"))
