"""A 2,000-job batch while workers are SIGKILLed at random (10 kills): every job is done,
and each callback is enqueued and run exactly once."""

from __future__ import annotations

import json
import random
import time

import redis

from apps.fault_jobs import Record, Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, jids
from helpers import wait_for
from sidequest import Batch, keys
from sidequest.api import BatchStatus

JOBS = 2000


def test_random_kills_during_a_batch_give_exactly_once_callbacks(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    rng = random.Random(7)
    batch = Batch(description="chaos", on_success=(Record, ["on_success"]),
                  on_complete=(Record, ["on_complete"]))
    callbacks = {json.loads(r.hget(keys.batch(batch.bid), name))["jid"]: name
                 for name in ("on_success", "on_complete")}
    with batch.jobs():
        accepted = Work.perform_bulk([[rng.choice((0.02, 0.03, 0.05))]
                                      for _ in range(JOBS)])
    # Ten kills in a few seconds put the same innocent jobs in flight at several crashes; at
    # three, the poison-pill rule (tests/fault/test_poison.py and its kin) rightly buries
    # one, and a batch with a dead job never succeeds. Here every job must run: the rule is
    # set out of reach.
    workers = [spawn("-c", "5", max_deaths=100) for _ in range(3)]
    kills = 0
    while kills < 10 and ledger.done_count() < JOBS * 0.9:
        time.sleep(rng.uniform(0.2, 0.4))  # the fault's rhythm, not a synchronisation
        i = rng.randrange(3)
        workers[i].kill()
        kills += 1
        workers[i] = spawn("-c", "5", max_deaths=100)
    wait_for(lambda: BatchStatus(batch.bid).success, timeout=90, what="the batch to succeed")
    wait_for(lambda: set(callbacks) <= set(ledger.counts("done")), timeout=30,
             what="both callbacks to run")
    report = ledger.check(accepted, dead=jids(r.zrange("dead", 0, -1)))
    done = ledger.counts("done")
    print(f"batch under {kills} kills: {report.text()}; callbacks run "
          f"{[done[jid] for jid in callbacks]} times")
    assert kills == 10 and report.lost == []
    assert all(done[jid] == 1 for jid in callbacks)
    status = BatchStatus(batch.bid)
    assert (status.total, status.pending, status.failures) == (JOBS, 0, 0)
