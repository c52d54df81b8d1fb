"""``bench/capacity.py --cluster``: what each operation costs a Redis Cluster of 3 primaries
(bench/local_cluster.py; with ``--cluster-replicas 1``, a replica each), against the
single-Redis figures of the same run.

Every Sidequest key carries the ``{sq}`` hash tag, so all of them live in one slot, on one
primary: that primary does the work, and the other two should be all but idle. Both are
measured (INFO cpu of each node), as are the cluster client's own calls (CLUSTER SLOTS and
the like, from INFO commandstats of every node), which a single Redis never sees. With
replicas, the ``{sq}`` primary's figure includes feeding its replica, and the replica's own
CPU (applying what it is fed) is measured beside it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from bench.harness import PrivateRedis, counter_of, wait_count
from bench.jobs import DONE_KEY, FailsOnce, Noop
from bench.local_cluster import LocalCluster
from bench.redis_cost import Sample, Usage
from sidequest import connection

#: ``worker(name, one_by_one, url)``: a worker process on ``url`` for the ``with`` block.
Spawner = Callable[[str, bool, str], AbstractContextManager[subprocess.Popen[bytes]]]


@dataclass(frozen=True)
class ClusterSample:
    """What ``jobs`` jobs cost the ``{sq}`` primary, the other primaries together, the
    ``{sq}`` primary's replicas together (None without replicas), and how many CLUSTER
    calls all the nodes answered meanwhile."""

    owner: Sample
    others: Sample
    cluster_calls: int
    replica: Sample | None = None

    def __add__(self, other: ClusterSample) -> ClusterSample:
        replica = (self.replica + other.replica
                   if self.replica is not None and other.replica is not None else None)
        return ClusterSample(self.owner + other.owner, self.others + other.others,
                             self.cluster_calls + other.cluster_calls, replica)

    @property
    def calls_per_job(self) -> float:
        return self.cluster_calls / self.owner.jobs


class ClusterBench:
    def __init__(self, cluster: LocalCluster, tally: PrivateRedis, worker: Spawner) -> None:
        self.cluster, self.worker = cluster, worker
        self.counter = tally.client(0)
        self.owner = cluster.owner()
        self.replicas = cluster.replicas_of(self.owner)
        self.others = [port for port in cluster.primary_ports() if port != self.owner]
        self.clients = {port: cluster.node(port) for port in cluster.ports}

    def sample(self, operation: str, jobs: int) -> ClusterSample:
        """What one operation on ``jobs`` jobs cost the cluster's nodes."""
        self.cluster.flush()
        self.counter.flushall()
        connection.configure(self.cluster.url)
        return self._sample(operation, jobs)

    def _sample(self, operation: str, jobs: int) -> ClusterSample:
        if operation == "push":
            return self._measured(jobs, lambda: [Noop.perform_async(i) for i in range(jobs)])
        if operation == "bulk push":
            return self._measured(jobs, lambda: Noop.perform_bulk([[i] for i in range(jobs)]))
        if operation in ("run", "run one by one"):
            Noop.perform_bulk([[i] for i in range(jobs)])
            return self._run(jobs, "run", one_by_one=operation == "run one by one")
        if operation == "retry":
            FailsOnce.perform_bulk([[i] for i in range(jobs)])
            return self._run(jobs, "retry")
        pushed = self._measured(jobs, lambda: [Noop.perform_in(1, i) for i in range(jobs)])
        return pushed + self._run(jobs, "scheduled")

    def _run(self, jobs: int, name: str, one_by_one: bool = False) -> ClusterSample:
        """As the single-Redis run: measured until the last job completes, before the
        worker stops."""
        before = self._usage()
        with self.worker(f"cluster-{name}", one_by_one, self.cluster.url) as proc:
            wait_count(counter_of(self.counter, DONE_KEY), jobs, proc)
            return self._between(jobs, before, self._usage(), worker=True)

    def _measured(self, jobs: int, work: Callable[[], object]) -> ClusterSample:
        before = self._usage()
        work()
        return self._between(jobs, before, self._usage())

    def _usage(self) -> dict[int, Usage]:
        """One INFO per node, as the single-Redis bench reads its server."""
        return {port: Usage.of(client) for port, client in self.clients.items()}

    def _between(self, jobs: int, before: dict[int, Usage], after: dict[int, Usage],
                 worker: bool = False) -> ClusterSample:
        samples = {port: Sample.between(jobs, before[port], after[port], worker)
                   for port in self.clients}
        calls = sum(after[port].cluster_calls - before[port].cluster_calls
                    for port in self.clients)
        replica = _total([samples[port] for port in self.replicas]) if self.replicas else None
        return ClusterSample(samples[self.owner], _total([samples[p] for p in self.others]),
                             calls, replica)


def _total(samples: list[Sample]) -> Sample:
    return sum(samples[1:], samples[0])
