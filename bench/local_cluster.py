"""A throwaway local Redis Cluster for the benches, on free loopback ports, in a directory of
the caller's, stopped by ``stop()`` or at the end of a ``with`` block. By default primaries
only, so that a primary's CPU is its own work; with replicas, a primary's CPU also holds the
replication feed, as in production."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from bench.harness import BenchError, free_port

#: The cluster bus listens on the client port + 10000, so that one must be free too.
BUS_OFFSET = 10000
#: The slot of every key of the default shard in cluster mode (keys.py puts this hash tag
#: in front; another shard's is {sq:<name>}).
HASH_TAG = "{sq}"


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (+ BUS_OFFSET) is free too."""
    while True:
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port


class LocalCluster:
    host = "127.0.0.1"

    def __init__(self, executable: str, directory: Path, primaries: int = 3,
                 replicas: int = 0) -> None:
        self.executable, self.dir, self.replicas = executable, directory, replicas
        #: Every node, primaries and replicas alike (redis-cli picks which is which).
        self.ports = [cluster_port() for _ in range(primaries * (1 + replicas))]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{self.host}:{p}" for p in self.ports)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(self.host, port, socket_timeout=5)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        for port in self.ports:
            with open(self.dir / f"redis-{port}.log", "ab") as log:
                # Own session: Ctrl-C reaches only the bench, which then stops the nodes.
                self.procs.append(subprocess.Popen(
                    [self.executable, "--port", str(port), "--bind", self.host,
                     "--cluster-enabled", "yes", "--cluster-config-file",
                     str(self.dir / f"nodes-{port}.conf"), "--save", "",
                     "--appendonly", "no", "--dir", str(self.dir)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True))
        for port in self.ports:
            self._wait(lambda p=port: self.node(p).ping(), f"node {port} to answer PING")
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{self.host}:{p}" for p in self.ports),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, timeout=60, check=False)
        if created.returncode != 0:
            raise BenchError(f"redis-cli --cluster create failed: {created.stdout!r}")
        for port in self.ports:
            self._wait(lambda p=port: self.node(p).cluster("info")["cluster_state"] == "ok",
                       f"node {port} to report cluster_state:ok")
        # A replica still loading its first copy would charge its primary for the transfer
        # in the first sample.
        for port in self.primary_ports():
            self._wait(lambda p=port: len(self._synced_replicas(p)) == self.replicas,
                       f"the replicas of {port} to be in sync")

    def _slot_ranges(self) -> list[tuple[int, int, int]]:
        """(first slot, last slot, primary port) of every range."""
        with self.node(self.ports[0]) as probe:
            return [(int(start), int(end), int(primary[1]))
                    for start, end, primary, *_ in probe.execute_command("CLUSTER SLOTS")]

    def primary_ports(self) -> list[int]:
        return sorted({primary for _, _, primary in self._slot_ranges()})

    def replicas_of(self, primary: int) -> list[int]:
        """From the primary itself: another node's CLUSTER SLOTS can lag behind the gossip."""
        return sorted(int(entry["port"]) for entry in self._replica_entries(primary))

    def _synced_replicas(self, primary: int) -> list[dict[str, object]]:
        return [entry for entry in self._replica_entries(primary)
                if entry.get("state") == "online"]

    def _replica_entries(self, primary: int) -> list[dict[str, object]]:
        info = self.node(primary).info("replication")
        return [value for key, value in info.items()
                if key.startswith("slave") and isinstance(value, dict)]

    def owner(self, tag: str = HASH_TAG, slot: int | None = None) -> int:
        """The port of the primary that serves the slot of hash tag ``tag`` (or ``slot``).

        redis-py's cluster client sends what has no key to the primary of slot 0, the
        command table it reads at start (COMMAND, a millisecond or two of that node's CPU,
        once per client) included."""
        if slot is None:
            with self.node(self.ports[0]) as probe:
                slot = int(probe.cluster("keyslot", tag))
        for start, end, primary in self._slot_ranges():
            if start <= slot <= end:
                return primary
        raise BenchError(f"no node serves slot {slot}")

    def flush(self) -> None:
        for port in self.primary_ports():  # replicas refuse writes; they follow
            with self.node(port) as client:
                client.flushall()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def _wait(self, check: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():  # type: ignore[operator]
                    return
            except (redis.RedisError, KeyError):
                pass
            if any(proc.poll() is not None for proc in self.procs):
                raise BenchError(f"a cluster node exited; see {self.dir}/redis-*.log")
            if time.monotonic() > deadline:
                raise BenchError(f"timed out waiting for {what}")
            time.sleep(0.1)
