"""Redis losing its data under a running worker (a flush, a restart without persistence) is
said in the worker's log, with what Redis shows of the cause: the queued jobs went with it,
and nothing else in the worker would tell."""

from __future__ import annotations

import redis

from fault.conftest import SpawnWorker
from helpers import wait_for
from redis_server import RedisServer

LOST = "Redis lost this worker's process record"
# Long enough for a stopped-and-started Redis to be back well inside it (a record gone after
# an outage longer than the lease may have been removed by a reaper, and goes unsaid).
LEASE = 15.0


def test_a_flush_under_a_running_worker_is_said(spawn: SpawnWorker, r: redis.Redis) -> None:
    worker = spawn("-c", "2", lease_ttl=LEASE)
    worker.wait_registered(r)
    assert LOST not in worker.log(200)
    r.flushall()
    wait_for(lambda: LOST in worker.log(200), timeout=10, what="the data-loss line")
    line = next(line for line in worker.log(200).splitlines() if LOST in line)
    assert "the same server, up" in line and "flushed (FLUSHALL, FLUSHDB)" in line, line
    worker.wait_registered(r)  # and it registers again
    assert worker.alive


def test_a_restart_without_persistence_is_said(spawn: SpawnWorker, server: RedisServer,
                                               r: redis.Redis) -> None:
    worker = spawn("-c", "2", lease_ttl=LEASE)
    worker.wait_registered(r)
    server.stop()
    server.start()
    wait_for(lambda: LOST in worker.log(200), timeout=15, what="the data-loss line")
    line = next(line for line in worker.log(200).splitlines() if LOST in line)
    assert "it restarted" in line and "appendonly is off" in line, line
    assert worker.alive
