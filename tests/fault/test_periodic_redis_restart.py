"""Periodic ticks across a Redis restart, three workers running an every-second entry:

- Redis SIGKILLed and restarted from its AOF: the ticks of the outage are pushed when it is
  back (within the grace period) and none twice, though pushes were cut mid-flight.
- Redis restarted empty (no persistence): the workers write their entries again and, from
  the ticks they remember, push the ticks of the outage; none twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fault.conftest import SpawnWorker
from fault.harness import flagged_server
from fault.periodic_check import check_every_second, redis_now
from helpers import wait_for
from redis_server import RedisServer
from sidequest import keys


def run_across_restart(server: RedisServer, spawn: SpawnWorker, kill: bool) -> tuple[int, int]:
    """Three workers; Redis stopped for 3 s mid-run; returns the judged span of ticks."""
    r = server.client(socket_timeout=5)
    try:
        workers = [spawn("-r", "apps.periodic_app", url=server.url) for _ in range(3)]
        for worker in workers:
            worker.wait_registered(r)
        start = redis_now(r) + 2
        wait_for(lambda: redis_now(r) >= start + 5, timeout=15, what="five seconds of ticks")
        server.stop(kill=kill)
        if not kill:
            # Ticks pushed until the server had stopped (a loaded machine takes a while to stop
            # it) are lost with Redis's data; ticks after that are not. Redis is down: the
            # host's clock, the same machine's, stands in for its TIME.
            start = int(time.time()) + 1
        time.sleep(3)  # the fault: Redis is away for 3 seconds
        server.start()
        wait_for(lambda: r.exists("queue:periodic-count"), timeout=20, what="pushes again")
        wait_for(lambda: redis_now(r) >= start + 15, timeout=30, what="more ticks")
        end = redis_now(r) - 2
        try:
            wait_for(lambda: "never pushed" not in check_every_second(r, start, end)[1],
                     timeout=15, what="every tick up to the end pushed")
        except AssertionError:
            state = r.hgetall(keys.periodic_state("every-second"))
            raise AssertionError("\n".join(w.log() for w in workers) + f"\nstate {state}, judged"
                                 f" {start}..{end}: " + check_every_second(r, start, end)[1]
                                 ) from None
        for worker in workers:
            assert worker.alive, worker.log()
            worker.reap()
        count, problems = check_every_second(r, start, end)
        assert not problems, problems
        assert r.hexists(keys.PERIODIC, "every-second")
        return count, end - start + 1
    finally:
        r.close()


@pytest.mark.slow
@pytest.mark.soak  # mostly waiting for ticks: `make test` runs it beside the unit tests
@pytest.mark.timeout(120)
def test_redis_killed_and_restarted_from_its_aof(tmp_path: Path, spawn: SpawnWorker) -> None:
    aof = flagged_server(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    try:
        count, span = run_across_restart(aof, spawn, kill=True)
    finally:
        aof.stop()
    assert count == span >= 12


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_redis_restarted_empty(server: RedisServer, spawn: SpawnWorker) -> None:
    count, span = run_across_restart(server, spawn, kill=False)
    assert count == span >= 10
