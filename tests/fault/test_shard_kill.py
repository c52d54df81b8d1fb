"""F2 with shards: a worker serving queues on two Redis servers is SIGKILLed (its supervisor
and both of its processes) with jobs in flight on both; another worker recovers every one of
them from the in-progress list on the shard it came from. Nothing is lost."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import sidequest
from apps.fault_jobs import Work
from fault.conftest import SpawnWorker, need_redis
from fault.harness import Ledger, jids
from helpers import wait_for
from redis_server import RedisServer
from sidequest import connection


@pytest.fixture
def second(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis2"
    directory.mkdir()
    server = RedisServer(need_redis(), directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pids_on(client: redis.Redis) -> dict[int, str]:
    """The worker processes registered on one shard: pid -> identity."""
    out = {}
    for member in client.smembers("processes"):
        identity = member.decode()
        out[int(identity.split(":")[-2])] = identity
    return out


def test_sigkilled_sharded_worker_loses_nothing(spawn: SpawnWorker, server: RedisServer,
                                                second: RedisServer, r: redis.Redis,
                                                ledger: Ledger) -> None:
    sidequest.configure(server.url, shards={"reports": second.url},
                        shard_queues={"reports": "reports"})
    other = second.client(socket_timeout=5)
    env = {"SIDEQUEST_SHARDS": f"reports={second.url}",
           "SIDEQUEST_SHARD_QUEUES": "reports=reports"}
    try:
        victim = spawn("-c", "10", "-q", "default", "-q", "reports", env=env)
        wait_for(lambda: r.scard("processes") and other.scard("processes"), 30,
                 "the victim to register on both shards")
        victim_pids = {**pids_on(r), **pids_on(other)}
        assert len(victim_pids) == 2  # one process per shard
        accepted = (Work.perform_bulk([[2.0]] * 10)
                    + Work.set(queue="reports").perform_bulk([[2.0]] * 10))
        wait_for(lambda: len(ledger.counts("start")) == 20, 30, "20 jobs running in the victim")
        # Freeze the supervisor (so that it neither restarts nor gracefully stops its
        # processes), kill both processes, then the supervisor: a crash of the whole worker.
        os.kill(victim.pid, signal.SIGSTOP)
        for pid in victim_pids:
            os.kill(pid, signal.SIGKILL)
        victim.kill()
        spawn("-c", "10", "-q", "default", "-q", "reports", env=env)
        rescuer_pids: set[int] = set()

        def rescuer_registered() -> bool:
            rescuer_pids.update(set(pids_on(r)) - set(victim_pids))
            rescuer_pids.update(set(pids_on(other)) - set(victim_pids))
            return len(rescuer_pids) == 2

        wait_for(rescuer_registered, 30, "the rescuer to register on both shards")

        def rerun() -> bool:
            return sum(1 for e in ledger.entries()
                       if e[0] == "start" and e[3] in rescuer_pids) == 20

        wait_for(rerun, 30, "the rescuer to re-run the 20 jobs of both shards")
        wait_for(lambda: ledger.done_count() == 20, 30, "all 20 done")
        dead = jids(r.zrange("dead", 0, -1)) + jids(other.zrange("dead", 0, -1))
        report = ledger.check(accepted, dead=dead)
        print(f"sharded SIGKILL with 20 in flight: {report.text()}")
        assert report.lost == [] and report.duplicates == {}
        assert set(report.reruns) == set(accepted)
        wait_for(lambda: not r.keys("sq:inprogress:*") and not other.keys("sq:inprogress:*"),
                 10, "no in-progress list left on either shard")
        for client in (r, other):  # each shard's reaper recovered its own victim process
            assert not [i for p, i in pids_on(client).items() if p in victim_pids
                        and client.exists(f"sq:inprogress:{i}")]
    finally:
        other.close()
        connection.reset()
