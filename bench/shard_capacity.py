"""``bench/capacity.py --shards 2``: the Redis CPU per job of each shard when the same jobs
are spread over two Redis servers, against the single-Redis figures.

Half the jobs go to queue ``default`` (the default shard), half to queue ``s1``, routed to a
second measured server. One worker command serves both queues, so it runs one process per
shard (each with ``-c 10``, as the single-Redis run's one process). Each shard's CPU is
divided by the jobs it carried. Sharding should not change what a job costs its Redis: each
shard's figure should be within 10% of the single-Redis one.

With ``--cluster`` as well, the same runs on one Redis Cluster: the second shard's keys
carry its own hash tag, chosen to sit on another primary than ``{sq}``, and each of the two
primaries is measured as each server is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis

from bench.harness import PrivateRedis, counter_of, kill_group, terminate_all, wait_count
from bench.jobs import COUNTER_URL_ENV, DONE_KEY, FailsOnce, Noop
from bench.local_cluster import LocalCluster
from bench.redis_cost import Sample, Usage
from sidequest import connection

ROOT = Path(__file__).resolve().parent.parent
#: Within this ratio of the single-Redis figure, sharding costs a job nothing extra.
TOLERANCE = 0.10


class ShardedBench:
    """Half the jobs on queue ``default`` (the default shard), half on a queue named after
    the second shard; ``clients`` measure the server (or primary) of each, ``urls`` reach
    them."""

    def __init__(self, clients: list[redis.Redis], urls: list[str], shard: str, *,
                 tally: PrivateRedis, logs: Path, config: Path) -> None:
        self.clients, self.urls, self.shard = clients, urls, shard
        self.tally, self.logs, self.config = tally, logs, config
        self.queues = ("default", shard)
        self.counter = tally.client(0)
        self.env = {"SIDEQUEST_SHARDS": f"{shard}={urls[1]}",
                    "SIDEQUEST_SHARD_QUEUES": f"{shard}={shard}"}

    @classmethod
    def on_servers(cls, servers: list[PrivateRedis], tally: PrivateRedis, logs: Path,
                   config: Path) -> ShardedBench:
        return cls([server.client(0) for server in servers],
                   [server.url(0) for server in servers], "s1", tally=tally, logs=logs,
                   config=config)

    @classmethod
    def on_cluster(cls, cluster: LocalCluster, tally: PrivateRedis, logs: Path,
                   config: Path) -> ShardedBench:
        home = cluster.owner()
        # Not on the primary of slot 0 either (unless {sq} is there): that one answers each
        # new client's COMMAND, a cost per process start, not per job.
        avoid = {home, cluster.owner(slot=0)}
        if len(avoid) == 1:
            avoid = {home}
        shard = next(f"s{i}" for i in range(1, 100)
                     if cluster.owner("{sq:" + f"s{i}" + "}") not in avoid)
        other = cluster.owner("{sq:" + shard + "}")
        return cls([cluster.node(home), cluster.node(other)], [cluster.url, cluster.url],
                   shard, tally=tally, logs=logs, config=config)

    def configure(self) -> None:
        connection.configure(self.urls[0], shards={self.shard: self.urls[1]},
                             shard_queues={self.shard: self.shard})

    def usage(self) -> list[Usage]:
        return [Usage.of(client) for client in self.clients]

    def run(self, jobs: int, name: str) -> list[Usage]:
        """Each server's counters once ``jobs`` are done, taken before the worker stops (as
        the single-Redis run takes them): its stopping is no job's cost."""
        env = {**os.environ, **self.env, "REDIS_URL": self.urls[0],
               COUNTER_URL_ENV: self.tally.url(0),
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
        env.pop("SIDEQUEST_REDIS_URL", None)
        with open(self.logs / f"sharded-{name}.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sidequest", "-r", "bench.jobs", "-c", "10",
                 "-q", self.queues[0], "-q", self.queues[1], "--log-level", "WARNING",
                 "-C", str(self.config)], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_count(counter_of(self.counter, DONE_KEY), jobs, proc)
            return self.usage()
        finally:
            terminate_all([proc], 30)
            kill_group(proc)

    def push(self, operation: str, half: int) -> None:
        """``half`` jobs to each shard's queue: one at a time, in bulk, or scheduled.

        One shard's pushes, then the other's: each server takes its requests back to back,
        as the single Redis does. Pushes alternating between the servers would leave each
        idle between two of its requests, and a server that idles between requests spends
        more on each (waking up, a colder cache): 12-23% more for a bare LPUSH on a 2-core
        host, whatever sends it. That is the cost of a half-idle server, not of sharding; a
        capacity model is for busy servers."""
        for queue in self.queues:
            setter = Noop.set(queue=queue)
            if operation == "bulk push":
                setter.perform_bulk([[i] for i in range(half)])
                continue
            for i in range(half):
                if operation == "push":
                    setter.perform_async(i)
                else:
                    setter.perform_in(1, i)

    def sample(self, operation: str, jobs: int) -> list[Sample]:
        """What one operation cost each shard (half the jobs each)."""
        self.configure()
        for client in self.clients:
            client.flushall()
        self.counter.flushall()
        half = jobs // 2
        if operation in ("run", "retry"):
            job_class = Noop if operation == "run" else FailsOnce
            for q in self.queues:
                job_class.set(queue=q).perform_bulk([[i] for i in range(half)])
            return self._measured(half, lambda: self.run(2 * half, operation), worker=True)
        pushed = self._measured(half, lambda: self.push(operation, half))
        if operation != "scheduled":
            return pushed
        ran = self._measured(half, lambda: self.run(2 * half, operation), worker=True)
        return [a + b for a, b in zip(pushed, ran, strict=True)]

    def _measured(self, half: int, work: Callable[[], list[Usage] | None],
                  worker: bool = False) -> list[Sample]:
        """What ``work`` cost each server: up to the counters it returns, else to its end."""
        before = self.usage()
        done = work() or self.usage()
        return [Sample.between(half, start, after, worker)
                for start, after in zip(before, done, strict=True)]
