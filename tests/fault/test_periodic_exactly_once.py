"""Three worker processes run one every-second periodic entry for a minute: exactly one push
per second, none doubled, none skipped (the pushes are counted, not the runs)."""

from __future__ import annotations

import time

import pytest
import redis

from fault.conftest import SpawnWorker
from fault.periodic_check import check_every_second, redis_now

DURATION = 60


@pytest.mark.slow
@pytest.mark.soak  # a minute, mostly waiting: `make test` runs it beside the unit tests
@pytest.mark.timeout(150)
def test_three_processes_push_each_second_once(spawn: SpawnWorker, r: redis.Redis) -> None:
    workers = [spawn("-r", "apps.periodic_app") for _ in range(3)]
    for worker in workers:
        worker.wait_registered(r)
    start = redis_now(r) + 2  # every process has synced its entries by then
    deadline = time.monotonic() + DURATION + 2
    while time.monotonic() < deadline:  # observe for a minute, watching the processes live
        assert all(w.alive for w in workers), [w.log() for w in workers if not w.alive]
        time.sleep(1)
    end = redis_now(r) - 2  # ticks still in flight at the end are not judged
    for worker in workers:
        worker.reap()
    count, problems = check_every_second(r, start, end)
    assert not problems, problems
    assert count == end - start + 1 >= DURATION - 5
