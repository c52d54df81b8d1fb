"""Three worker processes run one every-second periodic entry for a minute while processes
are SIGKILLed and restarted at random: still exactly one push per second. A kill can land
anywhere, including inside the push; ticks missed while no process ran come within the grace
period, when the replacement starts."""

from __future__ import annotations

import random
import time

import pytest
import redis

from fault.conftest import SpawnWorker
from fault.periodic_check import check_every_second, redis_now
from helpers import wait_for

DURATION = 60


@pytest.mark.slow
@pytest.mark.soak  # a minute, mostly waiting: `make test` runs it beside the unit tests
@pytest.mark.timeout(170)
def test_random_sigkills_neither_skip_nor_double_a_tick(spawn: SpawnWorker,
                                                        r: redis.Redis) -> None:
    rng = random.Random()
    workers = [spawn("-r", "apps.periodic_app") for _ in range(3)]
    for worker in workers:
        worker.wait_registered(r)
    start = redis_now(r) + 2
    deadline = time.monotonic() + DURATION
    kills = 0
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 4.0))
        victim = rng.randrange(len(workers))
        workers[victim].kill()
        kills += 1
        if rng.random() < 0.3:  # sometimes two at once, leaving one or none running
            other = rng.randrange(len(workers))
            workers[other].kill()
            kills += 1
        time.sleep(rng.uniform(0, 1.5))
        workers = [w if w.alive else spawn("-r", "apps.periodic_app") for w in workers]
    for worker in workers:  # the last replacements catch up with what no process pushed
        worker.wait_registered(r)
    end = redis_now(r) - 2
    # The replacements push what no process pushed while none ran; a double never goes away.
    wait_for(lambda: "never pushed" not in check_every_second(r, start, end)[1], timeout=20,
             what="every tick up to the end pushed")
    for worker in workers:
        worker.reap()
    count, problems = check_every_second(r, start, end)
    print(f"{kills} SIGKILLs in {DURATION}s: {count} ticks judged, {problems or 'each once'}")
    assert not problems, f"{kills} kills: {problems}"
    assert count == end - start + 1 >= DURATION - 5
    assert kills >= 10
