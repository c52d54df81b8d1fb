"""F14: schedulers SIGKILLed in a loop while 10,000 jobs fall due in the same second, with two
schedulers running: every job is enqueued exactly once."""

from __future__ import annotations

import random
import time

import redis

from fault.conftest import SpawnWorker
from fault.harness import jids
from sidequest import client


def test_scheduler_kill_loop_enqueues_each_due_job_once(spawn: SpawnWorker, sq: str,
                                                       r: redis.Redis) -> None:
    rng = random.Random(7)
    # The workers poll "schedule" but never fetch from "sched": the queue keeps what they move.
    make = lambda: spawn("-q", "other", poll_interval=0.02)  # noqa: E731
    schedulers = [make(), make()]
    for worker in schedulers:
        worker.wait_registered(r)
    due = time.time() + 1.0
    items = [{"class": "fault.Work", "args": [i], "queue": "sched", "at": due}
             for i in range(10_000)]
    accepted = client.push_many(items)
    assert r.zcard("schedule") == 10_000
    kills, kills_while_due = 0, 0
    deadline = time.monotonic() + 60
    while r.zcard("schedule") and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.02, 0.1))  # the fault's rhythm: a kill every 20-100 ms
        # Kill only a registered worker, whose scheduler thread is running.
        live = [i for i, w in enumerate(schedulers) if w.identity(r)]
        if not live:
            continue
        i = rng.choice(live)
        schedulers[i].kill()
        kills += 1
        kills_while_due += time.time() >= due
        schedulers[i] = make()
    moved = time.time() - due
    queued = jids(r.lrange("queue:sched", 0, -1))
    print(f"scheduler kill loop: {kills} kills, {kills_while_due} after due; {len(queued)}"
          f" enqueued, {len(set(queued))} distinct, {r.zcard('schedule')} left, all moved"
          f" {moved:.2f}s after due;"
          f" 'processes' holds {r.scard('processes')} identities for 2 live workers")
    assert r.zcard("schedule") == 0
    assert len(queued) == 10_000 and set(queued) == set(accepted)
    assert kills_while_due >= 1
