"""F11: Redis Sentinel, one master, one replica, three sentinels on loopback; the master is
SIGKILLed mid-run. Clients and workers follow the new master; acknowledged pushes lost to
asynchronous replication are counted."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import sidequest
from apps.fault_jobs import Work
from fault.conftest import SpawnWorker, need_redis
from fault.harness import Ledger, flagged_server, jids
from helpers import wait_for
from redis_server import NO_RETRY, RedisServer, free_port
from sidequest import sentinel_watch

SERVICE = "mymaster"


def sentinel_executable() -> str:
    executable = shutil.which("redis-sentinel")
    if executable is None:
        hint = "redis-sentinel is missing: run `make sentinel` (Debian package redis-sentinel)"
        if os.environ.get("CI") == "true":
            pytest.fail(hint)
        pytest.skip(hint)
    return executable


class Sentinels:
    def __init__(self, executable: str, directory: Path, master_port: int) -> None:
        self.ports = [free_port() for _ in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            conf = directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            log = open(directory / f"sentinel-{port}.log", "wb")  # noqa: SIM115
            self.procs.append(subprocess.Popen([executable, str(conf)], stdout=log,
                                               stderr=subprocess.STDOUT))
            log.close()

    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def ask(self, port: int, *command: str) -> object:
        with redis.Redis(port=port, socket_timeout=1, retry=NO_RETRY,
                         decode_responses=True) as client:
            return client.execute_command(*command)

    def ready(self) -> bool:
        """Every sentinel sees the replica and both other sentinels."""
        try:
            return all(
                self.ask(p, "SENTINEL", "REPLICAS", SERVICE)
                and len(self.ask(p, "SENTINEL", "SENTINELS", SERVICE)) == 2  # type: ignore[arg-type]
                for p in self.ports)
        except redis.RedisError:
            return False

    def master_port(self) -> int:
        _, port = self.ask(self.ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)  # type: ignore[misc]
        return int(port)

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, Sentinels]]:
    executable = sentinel_executable()
    (tmp_path / "m").mkdir()
    (tmp_path / "s").mkdir()
    master = RedisServer(need_redis(), tmp_path / "m")
    master.start()
    replica = flagged_server(tmp_path / "s", "--replicaof", "127.0.0.1", str(master.port))
    sentinels = Sentinels(executable, tmp_path, master.port)
    try:
        wait_for(lambda: replica.client().info("replication").get("master_link_status") == "up",
                 what="the replica in sync")
        wait_for(sentinels.ready, timeout=20, what="sentinels to discover each other")
        yield master, replica, sentinels
    finally:
        sentinels.stop()
        replica.stop()
        master.stop()


class Pusher(threading.Thread):
    """Pushes one job every few ms through Sentinel; records what was acknowledged, when."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.acked: list[tuple[float, str]] = []
        self.errors: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.003):  # load, not synchronisation
            try:
                jid = Work.perform_async(0)
                self.acked.append((time.monotonic(), jid))
            except (sidequest.RedisUnavailable, redis.RedisError) as exc:
                self.errors.append((time.monotonic(), type(exc).__name__))


def test_master_killed_clients_follow_new_master(cluster: tuple[RedisServer, RedisServer,
                                                                Sentinels],
                                                 spawn: SpawnWorker, ledger: Ledger) -> None:
    master, replica, sentinels = cluster
    sidequest.configure(redis_url=sentinels.url())
    pusher = Pusher()
    try:
        workers = [spawn("-c", "5", url=sentinels.url()) for _ in range(2)]
        with master.client() as m:
            for worker in workers:
                worker.wait_registered(m)
        pusher.start()
        wait_for(lambda: ledger.done_count() >= 300, timeout=20, what="300 jobs done")
        master.stop(kill=True)
        killed = time.monotonic()
        wait_for(lambda: sentinels.master_port() == replica.port, timeout=30,
                 what="the sentinels to promote the replica")
        promoted = time.monotonic() - killed
        wait_for(lambda: pusher.acked and pusher.acked[-1][0] > killed + promoted, timeout=30,
                 what="a push acknowledged by the new master")
        pushes_back = pusher.acked[-1][0] - killed
        done_before = ledger.done_count()
        wait_for(lambda: ledger.done_count() > done_before + 100, timeout=30,
                 what="workers to run jobs from the new master")
        work_back = time.monotonic() - killed
        pusher.stop.set()
        pusher.join(15)
        r = replica.client()
        wait_for(lambda: not r.llen("queue:default") and not r.keys("sq:inprogress:*"),
                 timeout=30, what="the new master drained")
        accepted = [jid for _, jid in pusher.acked]
        report = ledger.check(accepted, dead=jids(r.zrange("dead", 0, -1)))
        when = {jid: t for t, jid in pusher.acked}
        lost_ages = sorted(killed - when[j] for j in report.lost)
        print(f"sentinel failover: promoted {promoted:.2f}s after the kill, pushes back after "
              f"{pushes_back:.2f}s, workers back after {work_back:.2f}s; {report.text()}; "
              f"lost pushes were acknowledged {[f'{a * 1000:.0f}ms' for a in lost_ages]} "
              f"before the kill; {len(pusher.errors)} pushes refused during the failover")
        assert pushes_back < 30 and work_back < 30
        # Loss is possible only in the asynchronous replication window before the kill.
        assert all(age < 1.0 for age in lost_ages)
        assert all(w.alive for w in workers)
        assert not any("READONLY" in w.log(10_000) for w in workers)
    finally:
        pusher.stop.set()
        sidequest.connection.reset()


def test_after_a_planned_failover_pushes_go_to_the_new_primary_at_once(
        cluster: tuple[RedisServer, RedisServer, Sentinels]) -> None:
    """redis-py asked the Sentinels only when it opened a connection: a pooled one went on
    writing to the old primary, which acknowledged pushes for the ten seconds or so until it
    was made a replica, and the new primary never had those jobs."""
    master, replica, sentinels = cluster
    sidequest.configure(redis_url=sentinels.url())
    try:
        Work.perform_async(0)  # a pooled connection to the primary of now
        pool = sidequest.connection.client().connection_pool
        assert pool.master_address == ("127.0.0.1", master.port)
        sentinels.ask(sentinels.ports[0], "SENTINEL", "FAILOVER", SERVICE)
        wait_for(lambda: sentinels.master_port() == replica.port, timeout=30,
                 what="the sentinels to promote the replica")
        # No push in between: the process follows the failover by itself.
        wait_for(lambda: pool.master_address == ("127.0.0.1", replica.port), timeout=3,
                 what="the client to follow the new primary")
        jid = Work.perform_async(1)
        with replica.client() as promoted:
            assert any(jid.encode() in raw for raw in promoted.lrange("queue:default", 0, -1))
    finally:
        sidequest.connection.reset()


def test_a_planned_failover_is_logged_once_by_each_process(
        cluster: tuple[RedisServer, RedisServer, Sentinels], spawn: SpawnWorker,
        caplog: pytest.LogCaptureFixture) -> None:
    """A worker switched primaries without a word: its log did not tell when, nor that jobs
    it fetched from the old primary in the last moments may run again."""
    master, replica, sentinels = cluster
    moved = (f"Sentinel: the primary of {SERVICE} moved from 127.0.0.1:{master.port} to"
             f" 127.0.0.1:{replica.port}; jobs fetched from the old primary")
    sidequest.configure(redis_url=sentinels.url())
    try:
        worker = spawn("-c", "5", url=sentinels.url())
        with master.client() as m:
            worker.wait_registered(m)
        Work.perform_async(0)  # this process follows the primary too
        with caplog.at_level(logging.WARNING, logger="sidequest"):
            sentinels.ask(sentinels.ports[0], "SENTINEL", "FAILOVER", SERVICE)
            wait_for(lambda: moved in worker.log(10_000), timeout=30,
                     what="the worker to log the new primary")
            wait_for(lambda: any(moved in r.getMessage() for r in caplog.records), timeout=5,
                     what="this process to log the new primary")
            time.sleep(2 * sentinel_watch.INTERVAL)  # rounds after it: said once, not again
        assert worker.log(10_000).count(moved) == 1
        assert [moved in r.getMessage() for r in caplog.records].count(True) == 1
    finally:
        sidequest.connection.reset()
