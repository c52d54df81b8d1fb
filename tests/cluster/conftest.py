"""A real Redis Cluster for the session: 3 primaries and 3 replicas on free loopback ports,
emptied before each test, and Sidequest configured with its redis+cluster:// URL."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the benches' cluster helpers, shared with the suite
    sys.path.insert(0, str(ROOT))

from bench.local_cluster import cluster_port  # noqa: E402

from fault.harness import Ledger, Worker, write_config  # noqa: E402
from helpers import wait_for  # noqa: E402
from redis_server import NO_RETRY  # noqa: E402
from sidequest.web import create_app  # noqa: E402
from web_helpers import PASSWORD, Client  # noqa: E402

NODE_TIMEOUT_MS = 1000


def answers(check: Callable[[], Any]) -> bool:
    """``check()``, with a node that does not answer yet (or errs) counted as False."""
    try:
        return bool(check())
    except redis.RedisError:
        return False


class Cluster:
    def __init__(self, directory: Path, executable: str) -> None:
        self.dir, self.executable = directory, executable
        self.ports = [cluster_port() for _ in range(6)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def node(self, port: int) -> redis.Redis:
        return redis.Redis("127.0.0.1", port, socket_timeout=2, retry=NO_RETRY)

    def launch(self, port: int) -> None:
        """Start (or restart, with its nodes file: it rejoins) the node on ``port``."""
        log = open(self.dir / f"redis-{port}.log", "ab")  # noqa: SIM115 - child owns it
        self.procs[port] = subprocess.Popen(
            [self.executable, "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file",
             str(self.dir / f"nodes-{port}.conf"), "--cluster-node-timeout",
             str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait(lambda: self.node(port).ping(), f"node {port} to answer PING")

    def start(self) -> None:
        for port in self.ports:
            self.launch(port)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        self.healthy()

    def healthy(self) -> None:
        """Wait until every node says cluster_state:ok and every primary has a replica in
        sync (so a failover test has one to promote)."""
        for port in self.ports:
            self._wait(lambda p=port: self.node(p).cluster("info").get("cluster_state") == "ok",
                       f"node {port} to report cluster_state:ok")
        self._wait(lambda: len(self.primaries()) == 3 and all(
            self.node(p).info("replication").get("connected_slaves") == 1
            for p in self.primaries()), "every primary to have its replica")

    def kill(self, port: int) -> None:
        self.procs[port].kill()
        self.procs[port].wait(10)

    def restore(self) -> None:
        """Restart killed nodes (they come back as replicas) and wait for a healthy cluster."""
        for port in self.ports:
            if self.procs[port].poll() is not None:
                self.launch(port)
        self.healthy()

    def _wait(self, check: Callable[[], Any], what: str) -> None:
        wait_for(lambda: answers(check), 30.0, what)

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def primaries(self) -> list[int]:
        found = []
        for port in self.alive():
            try:
                if self.node(port).info("replication")["role"] == "master":
                    found.append(port)
            except redis.RedisError:
                pass
        return found

    def client(self) -> redis.RedisCluster:
        nodes = [redis.cluster.ClusterNode("127.0.0.1", p) for p in self.alive()]
        return redis.RedisCluster(startup_nodes=nodes, socket_timeout=5)

    def flush(self) -> None:
        for port in self.primaries():
            self.node(port).flushall()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    executable = shutil.which("redis-server")
    if executable is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are missing: run `make redis`")
    made = Cluster(tmp_path_factory.mktemp("cluster"), executable)
    try:
        made.start()
        yield made
    finally:
        made.stop()


@pytest.fixture
def cluster_url(cluster: Cluster) -> Iterator[str]:
    if len(cluster.alive()) < len(cluster.ports):  # a failover test killed a node
        cluster.restore()
    cluster.flush()
    import sidequest
    import sidequest.connection

    sidequest.configure(redis_url=cluster.url)
    try:
        yield cluster.url
    finally:
        sidequest.connection.reset()


@pytest.fixture
def rc(cluster: Cluster, cluster_url: str) -> Iterator[redis.RedisCluster]:
    client = cluster.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")


@pytest.fixture
def spawn(cluster_url: str, ledger: Ledger, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """``spawn("-c", "5", **config)``: a worker subprocess on the cluster, reaped at the end."""
    workers: list[Worker] = []

    def make(*args: str, **config: Any) -> Worker:
        path = write_config(tmp_path / f"worker-{len(workers)}.toml", **config)
        worker = Worker(cluster_url, ledger.path, path, tmp_path, *args)
        workers.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in workers:
            worker.reap(timeout=5)
    # A worker that hit something cluster mode cannot do would have logged a traceback.
    for worker in workers:
        assert "Traceback" not in worker.log_path.read_text(errors="replace"), worker.log(80)


def dashboard(*paths: str) -> dict[str, str]:
    """The dashboard's pages at ``paths`` (each must answer 200), logged in."""
    app = create_app(password=PASSWORD, secret_key="test-secret-" + "x" * 32)
    with Client(app) as client:
        assert client.login().status_code == 303
        answers = {path: client.get(path) for path in paths}
    for path, answer in answers.items():
        assert answer.status_code == 200, f"{path}: {answer.status_code}"
    return {path: answer.text for path, answer in answers.items()}


def identity_of(worker: Worker, client: redis.RedisCluster) -> str:
    """The worker's member of {sq}processes ("" until its first heartbeat)."""
    for member in client.smembers("{sq}processes"):
        if f":{worker.pid}:".encode() in member:
            return str(member.decode())
    return ""



def slot_owner(cluster: Cluster) -> int | None:
    """The port of the primary serving the {sq} slot now (the others answer MOVED)."""
    for port in cluster.primaries():
        try:
            cluster.node(port).exists("{sq}probe")
        except redis.ResponseError:
            continue  # MOVED (or ASK mid-migration)
        except redis.RedisError:
            continue
        return port
    return None
