"""F15: Redis at maxmemory with noeviction: pushes fail loudly, workers keep running and
recover when memory frees; a worker warns at start when Redis may evict keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

import sidequest
from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, flagged_server
from helpers import wait_for
from redis_server import RedisServer
from sidequest import RedisUnavailable

BALLAST = b"x" * (4 * 1024 * 1024)


@pytest.fixture
def small(tmp_path: Path) -> RedisServer:
    server = flagged_server(tmp_path, "--maxmemory-policy", "noeviction")
    sidequest.configure(redis_url=server.url)
    yield server
    sidequest.connection.reset()
    server.stop()


def _fill(r: redis.Redis) -> None:
    """Put Redis over its limit: maxmemory at today's usage + 2 MB, then a 4 MB ballast.
    From then on every write is refused with OOM until the ballast is deleted."""
    base = int(r.info("memory")["used_memory"])
    r.set("ballast", BALLAST)
    r.config_set("maxmemory", base + 2 * 1024 * 1024)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("probe", "1")


def test_full_redis_refuses_pushes_and_workers_recover(small: RedisServer, spawn: SpawnWorker,
                                                      ledger: Ledger) -> None:
    r = small.client(socket_timeout=5)
    workers = [spawn("-c", "5", url=small.url) for _ in range(2)]
    for worker in workers:
        worker.wait_registered(r)
    accepted = Work.perform_bulk([[0.001]] * 200)
    wait_for(lambda: ledger.done_count() == 200, what="200 jobs before the fill")
    _fill(r)
    with pytest.raises(RedisUnavailable, match="out of memory") as refused:
        Work.perform_async(0)
    time.sleep(1.5)  # the fault: Redis stays full for 1.5 s (heartbeats and fetches refused)
    assert all(w.alive for w in workers)
    r.delete("ballast")
    accepted += Work.perform_bulk([[0.001]] * 200)
    wait_for(lambda: ledger.done_count() == 400, timeout=15, what="work after memory freed")
    report = ledger.check(accepted)
    print(f"maxmemory: push refused with {type(refused.value).__name__}: {refused.value};"
          f" {report.text()}")
    assert report.lost == [] and all(w.alive for w in workers)


def test_full_redis_push_raises_redis_unavailable(small: RedisServer) -> None:
    _fill(small.client())
    with pytest.raises((redis.RedisError, RedisUnavailable)) as refused:
        Work.perform_async(0)
    assert isinstance(refused.value, RedisUnavailable), repr(refused.value)
    assert "out of memory" in str(refused.value)


def test_worker_warns_when_redis_may_evict(spawn: SpawnWorker, r: redis.Redis) -> None:
    r.config_set("maxmemory-policy", "allkeys-lru")
    worker = spawn("-c", "1")
    worker.wait_registered(r)
    wait_for(lambda: "maxmemory-policy is 'allkeys-lru'" in worker.log(), what="the warning")
    assert "noeviction" in worker.log()
