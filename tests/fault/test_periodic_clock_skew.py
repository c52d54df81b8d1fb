"""F12 for periodic jobs: beside a worker with a correct clock, one runs 10 minutes ahead and
one 10 minutes behind (libfaketime); the every-second entry is still pushed exactly once per
second, on Redis's time. Skipped like test_clock_skew.py where faketime cannot be used."""

from __future__ import annotations

import time

import pytest
import redis

from fault.conftest import SpawnWorker
from fault.periodic_check import check_every_second, redis_now
from fault.test_clock_skew import SKEW, faketime_env
from helpers import wait_for

DURATION = 30


@pytest.mark.slow
@pytest.mark.soak  # half a minute of waiting for ticks: `make test` runs it beside the unit tests
@pytest.mark.timeout(120)
def test_skewed_clocks_neither_skip_nor_double_a_tick(spawn: SpawnWorker,
                                                      r: redis.Redis) -> None:
    workers = [spawn("-r", "apps.periodic_app", env=faketime_env(offset))
               for offset in (SKEW, -SKEW)]
    workers.append(spawn("-r", "apps.periodic_app"))
    for worker in workers:
        worker.wait_registered(r)
    start = redis_now(r) + 2
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        assert all(w.alive for w in workers), [w.log() for w in workers if not w.alive]
        time.sleep(1)
    end = redis_now(r) - 2
    wait_for(lambda: "never pushed" not in check_every_second(r, start, end)[1], timeout=10,
             what="every tick up to the end pushed")
    for worker in workers:
        worker.reap()
    count, problems = check_every_second(r, start, end)
    assert not problems, problems
    assert count == end - start + 1 >= DURATION - 5
