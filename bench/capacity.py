#!/usr/bin/env python3
"""Redis CPU per job, operation by operation: the figures behind docs/scaling.md.

    .venv/bin/python bench/capacity.py               # 20,000 jobs per operation, 3 runs
    .venv/bin/python bench/capacity.py -n 5000 --runs 1

Against a private redis-server, it reads the server's CPU time (INFO cpu, user + system) before
and after each operation and divides by the jobs. The jobs count themselves on a second
Redis, so the measured server does only Sidequest's work:

  push          perform_async, one job per call
  bulk push     perform_bulk, 1,000 jobs a call, over ten times the jobs (it costs so little
                a job that a new connection's cost would show)
  run           one worker process (-c 10) fetching, running and acknowledging the jobs, with
                its heartbeats, stats and scheduler polls
  run one by one  the same with one thread and no prefetch: a batch round trip per job
  retry         a job that fails once and is retried (1 s after, plus Sidekiq's 0-9 s jitter): its
                first run, the failure's write to the retry set, the scheduler's move back
                and the second run
  scheduled     perform_in, one job per call: the write to the schedule, the scheduler's
                move to the queue, the run

and an idle worker for 10 s. It prints the median microseconds of Redis CPU per job, the
batch round trips per job, the seconds a worker ran per job, and the model fitted to them
(bench/redis_cost.py): the cost of a batch round trip, of a worker's second, and each
operation's work per job.

    .venv/bin/python bench/capacity.py --shards 2

then also spreads the same jobs over two measured Redis servers (bench/shard_capacity.py),
interleaved with the single-Redis runs, and compares each shard's measured CPU per job with
what the model predicts from that shard's own round trips and worker seconds, run by run
against the one-Redis sample taken beside it (the median of the runs' ratios). On a shared
machine use more runs (--runs 9): single samples swing by a fifth or more.

    .venv/bin/python bench/capacity.py --cluster

also runs every operation, interleaved likewise, on a local Redis Cluster of 3 primaries
(bench/cluster_capacity.py) and prints what a job cost the primary holding the ``{sq}`` slot,
the other primaries, and the ratio to the single-Redis figure.

    .venv/bin/python bench/capacity.py --cluster --cluster-replicas 1

gives each primary a replica, as a production cluster has: the {sq} primary's figure then
includes the replication feed, and the replica's own CPU per job is printed beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import redis  # noqa: E402

from bench.cluster_capacity import ClusterBench, ClusterSample  # noqa: E402
from bench.harness import (  # noqa: E402
    BenchError,
    PrivateRedis,
    at_least,
    counter_of,
    cpu_model,
    kill_group,
    terminate_all,
    wait_count,
)
from bench.jobs import COUNTER_URL_ENV, DONE_KEY, FailsOnce, Noop  # noqa: E402
from bench.local_cluster import LocalCluster  # noqa: E402
from bench.redis_cost import Cost, Model, Sample, Usage  # noqa: E402
from bench.shard_capacity import TOLERANCE, ShardedBench  # noqa: E402
from sidequest import connection, keys  # noqa: E402

OPERATIONS = ("push", "bulk push", "run", "run one by one", "retry", "scheduled")
#: The two runs whose difference gives the cost of a round trip (redis_cost.Model.fit).
BATCHED, ONE_BY_ONE = "run", "run one by one"
#: The worker's timers for the bench: a scheduler that polls often, so that retried and
#: scheduled jobs move at once rather than after Sidekiq's 5 s average poll.
WORKER_TOML = "poll_interval = 0.2\ninitial_poll_wait = 0\n"
#: "run one by one": one thread and no prefetch, so each job is fetched in a round trip of
#: its own, as on a lightly loaded worker.
ONE_BY_ONE_TOML = WORKER_TOML + "prefetch = 0\n"
#: Seconds after a worker registers that still count as its start.
SETTLE = 1.0
#: A bulk push costs about a microsecond a job, so over the jobs of the other operations a
#: cost paid once per measurement (the client's new connection) would weigh on it as much as
#: the pushes themselves: it is measured over this many times the jobs.
BULK_JOBS = 10


def jobs_for(operation: str, jobs: int) -> int:
    return jobs * BULK_JOBS if operation == "bulk push" else jobs


def measured(client: redis.Redis, jobs: int, work: Callable[[], object]) -> Sample:
    """What ``work()`` cost the server."""
    before = Usage.of(client)
    work()
    return Sample.between(jobs, before, Usage.of(client))


class Bench:
    def __init__(self, server: PrivateRedis, tally: PrivateRedis, logs: Path) -> None:
        self.server, self.tally, self.logs = server, tally, logs
        self.client = server.client(0)
        self.counter = tally.client(0)
        self.config = logs / "worker.toml"
        self.config.write_text(WORKER_TOML)
        self.one_by_one = logs / "one-by-one.toml"
        self.one_by_one.write_text(ONE_BY_ONE_TOML)

    def reset(self) -> None:
        connection.configure(self.server.url(0))  # the other benches point it elsewhere
        self.client.flushall()
        self.counter.flushall()

    def push(self, jobs: int) -> Sample:
        return measured(self.client, jobs,
                        lambda: [Noop.perform_async(i) for i in range(jobs)])

    def bulk_push(self, jobs: int) -> Sample:
        return measured(self.client, jobs, lambda: Noop.perform_bulk([[i] for i in range(jobs)]))

    @contextlib.contextmanager
    def worker(self, name: str, one_by_one: bool = False, url: str | None = None,
               ) -> Iterator[subprocess.Popen[bytes]]:
        env = {**os.environ, "REDIS_URL": url or self.server.url(0),
               COUNTER_URL_ENV: self.tally.url(0),
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
        env.pop("SIDEQUEST_REDIS_URL", None)
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sidequest", "-r", "bench.jobs",
                 "-c", "1" if one_by_one else "10", "--log-level", "WARNING",
                 "-C", str(self.one_by_one if one_by_one else self.config)], cwd=ROOT, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            terminate_all([proc], 30)
            kill_group(proc)

    def run(self, jobs: int, name: str, one_by_one: bool = False) -> Sample:
        """What a worker started on the pushed jobs cost until ``jobs`` completed."""
        before = Usage.of(self.client)
        with self.worker(name, one_by_one) as proc:
            wait_count(counter_of(self.counter, DONE_KEY), jobs, proc)
            return Sample.between(jobs, before, Usage.of(self.client), worker=True)

    def idle(self, seconds: float) -> tuple[Sample, Sample]:
        """What a worker's start costs the server, from its launch to SETTLE seconds after it
        registered, and what the started worker with nothing to do costs over ``seconds``.
        The start's seconds run from the launch, as a run's do: the model charges the timers'
        rate for all of them, so the start's cost is what is left above it."""
        self.reset()
        launched = Usage.of(self.client)
        with self.worker("idle") as proc:
            deadline = time.monotonic() + 30
            while not self.client.scard(keys.PROCESSES):  # registered: its timers run
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("the idle worker did not start; see idle.log")
                time.sleep(0.01)
            time.sleep(SETTLE)  # its first looks at the queues and the schedule: the start's
            before = Usage.of(self.client)
            time.sleep(seconds)  # the measured stretch itself
            idle = Sample.between(1, before, Usage.of(self.client), worker=True)
        return (Sample.between(1, launched, before, worker=True),
                dataclasses.replace(idle, starts=0))

    def sample(self, operation: str, jobs: int) -> Sample:
        """What one operation on ``jobs`` jobs cost the server."""
        self.reset()
        if operation == "push":
            return self.push(jobs)
        if operation == "bulk push":
            return self.bulk_push(jobs)
        if operation in (BATCHED, ONE_BY_ONE):
            self.bulk_push(jobs)
            return self.run(jobs, "run", one_by_one=operation == ONE_BY_ONE)
        if operation == "retry":
            FailsOnce.perform_bulk([[i] for i in range(jobs)])
            return self.run(jobs, "retry")
        pushed = measured(self.client, jobs, lambda: [Noop.perform_in(1, i) for i in range(jobs)])
        return pushed + self.run(jobs, "scheduled")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("-n", "--jobs", type=at_least(100), default=20_000,
                   help="jobs per operation (20,000)")
    p.add_argument("--runs", type=at_least(1), default=3, help="runs; medians (3)")
    p.add_argument("--idle-seconds", type=float, default=10.0,
                   help="how long the idle worker is measured, each run (10)")
    p.add_argument("--shards", type=int, choices=(1, 2), default=1,
                   help="2: also measure each shard's cost with the jobs on two Redis servers")
    p.add_argument("--cluster", action="store_true",
                   help="also measure each operation on a local Redis Cluster of 3 primaries")
    p.add_argument("--cluster-replicas", type=int, choices=(0, 1), default=0,
                   help="replicas per cluster primary (0); with 1, the primaries' figures "
                        "include the replication feed")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    # SIGTERM (a timeout's) unwinds like Ctrl-C, so the workers, Redis servers and cluster
    # nodes, each in a session of its own, are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    executable = shutil.which("redis-server")
    if executable is None:
        print("redis-server is missing: apt-get install redis-server", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sq-capacity-") as tmp:
        base = Path(tmp)
        for name in "abc":
            (base / name).mkdir()
        with PrivateRedis(executable, base / "a") as server, \
                PrivateRedis(executable, base / "b") as tally, \
                PrivateRedis(executable, base / "c") as other:
            os.environ["REDIS_URL"] = server.url(0)
            os.environ.pop("SIDEQUEST_REDIS_URL", None)
            bench = Bench(server, tally, base)
            sharded = [ShardedBench.on_servers([server, other], tally, base, bench.config)
                       ] if opts.shards == 2 else []
            with contextlib.ExitStack() as stack:
                clustered = None
                if opts.cluster:
                    (base / "cluster").mkdir()
                    cluster = stack.enter_context(
                        LocalCluster(executable, base / "cluster",
                                     replicas=opts.cluster_replicas))
                    clustered = ClusterBench(cluster, tally, bench.worker)
                    if opts.shards == 2:
                        sharded.append(ShardedBench.on_cluster(cluster, tally, base,
                                                               bench.config))
                single, per_shard, idles, on_cluster = _measure(bench, sharded, clustered,
                                                                opts)
            middle = len(idles) // 2
            idle = sorted((i for _, i in idles), key=lambda i: i.cpu / i.seconds)[middle]
            start = sorted((s for s, _ in idles), key=lambda s: s.cpu)[middle]
            print(f"Redis CPU per job, {opts.jobs:,} jobs per operation ("
                  f"{jobs_for('bulk push', opts.jobs):,} pushed in bulk), median of "
                  f"{opts.runs}; {cpu_model()}, redis-server {server.version()}")
            costs = {op: Cost.median(samples) for op, samples in single.items()}
            model = Model.fit(costs, BATCHED, ONE_BY_ONE, idle, start)
            _print_model(costs, model, idle)
            if per_shard:
                _compare(per_shard[0], model, costs, _per_run(single), opts=opts,
                         what="2 shards (half each)")
            if on_cluster:
                _print_cluster(on_cluster, costs, opts)
            if len(per_shard) > 1:
                owners = {op: [s.owner for s in runs] for op, runs in on_cluster.items()}
                _compare(per_shard[1], model, costs, _per_run(owners), opts=opts,
                         what="2 shards of one Redis Cluster (half each, each shard's hash tag "
                         "on a primary of its own)")
    return 0


PerShard = dict[str, list[list[Sample]]]


def _measure(bench: Bench, sharded: list[ShardedBench], clustered: ClusterBench | None,
             opts: argparse.Namespace) -> tuple[dict[str, list[Sample]], list[PerShard],
                                                list[tuple[Sample, Sample]],
                                                dict[str, list[ClusterSample]]]:
    """Every operation and the idle worker ``opts.runs`` times, on one Redis and
    (interleaved, so that a slow stretch of a shared machine hits all alike) on a cluster
    and on two shards (of plain Redis, then of the cluster). Every other run takes an
    operation's samples in the opposite order, so that a machine slowing down (or speeding
    up) over a run does not favour the samples taken first."""
    single: dict[str, list[Sample]] = {op: [] for op in OPERATIONS}
    per_shard: list[PerShard] = [{} for _ in sharded]
    idles: list[tuple[Sample, Sample]] = []  # a worker's start, then its idle stretch
    on_cluster: dict[str, list[ClusterSample]] = {}
    for run in range(opts.runs):
        idles.append(bench.idle(opts.idle_seconds))
        for operation in OPERATIONS:
            jobs = jobs_for(operation, opts.jobs)
            label = f"run {run + 1}:"
            # Each reference sample beside the shards compared with it: one Redis, then two
            # plain shards; a one-shard cluster, then two shards of the cluster.
            pairs = zip(sharded, per_shard, strict=True)
            shards = [] if operation == ONE_BY_ONE else [
                functools.partial(_sample_shards, each, results, operation, jobs,
                                  f"{label} sharded{' cluster' if where else ''}")
                for where, (each, results) in enumerate(pairs)]
            steps = [functools.partial(_sample_single, bench, single, operation, jobs, label),
                     *shards[:1]]
            if clustered is not None:
                steps.append(functools.partial(_sample_cluster, clustered, on_cluster,
                                               operation, jobs, label))
            steps += shards[1:]
            for step in steps[::-1] if run % 2 else steps:
                step()
    return single, per_shard, idles, on_cluster


def _sample_single(bench: Bench, single: dict[str, list[Sample]], operation: str, jobs: int,
                   label: str) -> None:
    single[operation].append(bench.sample(operation, jobs))
    print(f"{label} {operation}: {single[operation][-1].us_per_job:.1f} us",
          file=sys.stderr)


def _sample_cluster(clustered: ClusterBench, on_cluster: dict[str, list[ClusterSample]],
                    operation: str, jobs: int, label: str) -> None:
    made = clustered.sample(operation, jobs)
    on_cluster.setdefault(operation, []).append(made)
    print(f"{label} cluster {operation}: {made.owner.us_per_job:.1f} us",
          file=sys.stderr)


def _sample_shards(each: ShardedBench, results: PerShard, operation: str, jobs: int,
                   label: str) -> None:
    shards = each.sample(operation, jobs)
    results.setdefault(operation, []).append(shards)
    print(f"{label} {operation}: {', '.join(f'{s.us_per_job:.1f}' for s in shards)} us",
          file=sys.stderr)


def _print_model(costs: dict[str, Cost], model: Model, idle: Sample) -> None:
    print(f"{'operation':<15} {'us/job':>7} {'trips/job':>9} {'worker us/job':>13} "
          f"{'work us/job':>11} {'jobs/s per Redis core':>22}")
    for operation, cost in costs.items():
        print(f"{operation:<15} {cost.us_per_job:7.1f} {cost.trips_per_job:9.3f} "
              f"{cost.us_of_worker_per_job:13.1f} {model.work[operation]:11.1f} "
              f"{1e6 / cost.us_per_job:22,.0f}")
    print(f"a round trip: {model.us_per_trip:.1f} us (the slope from {BATCHED!r} to "
          f"{ONE_BY_ONE!r}); a worker's timers: {model.us_per_second:.0f} us per second "
          f"(idle worker: {idle.cpu * 1e6 / idle.seconds:.0f} us/s, "
          f"{idle.trips / idle.seconds:.1f} round trips/s); a worker's start: "
          f"{model.us_per_start:.0f} us")
    print("work = us/job - trips/job x round trip - worker us/job x timers per second"
          " - starts/job x start (a worker run: one start)")
    run = costs[BATCHED]
    print(f"of a run's work: fetch (LMOVE) {run.fetch_us_per_job:.1f} us, acknowledge (LREM) "
          f"{run.ack_us_per_job:.1f} us, the rest (the scripts' handling of each job, the "
          f"worker's stats) {model.work[BATCHED] - run.fetch_us_per_job - run.ack_us_per_job:.1f}"
          " us")


def _per_run(samples: dict[str, list[Sample]]) -> dict[str, list[float]]:
    """Per operation, each run's cost on the reference the shards are compared with: one
    Redis, or the {sq} primary of a one-shard cluster (whose ratio to one Redis the model of
    a cluster primary multiplies by)."""
    return {op: [s.us_per_job for s in runs] for op, runs in samples.items()}


def paired(model: Model, operation: str, samples: list[Sample], reference: list[float],
           cost: Cost) -> tuple[list[float], list[float]]:
    """Run by run, the model's prediction for a shard's sample, scaled by how that run's
    reference sample (us per job) compared with ``cost``, the reference's median; and the
    sample's ratio to it."""
    models = [model.predict(operation, Cost.median([sample])) * ref / cost.us_per_job
              for sample, ref in zip(samples, reference, strict=True)]
    return models, [s.us_per_job / m for s, m in zip(samples, models, strict=True)]


def _compare(per_shard: PerShard, model: Model, costs: dict[str, Cost],
             reference: dict[str, list[float]], *, opts: argparse.Namespace,
             what: str) -> None:
    """Each shard's measured cost against the model's for its own jobs and round trips.

    Run by run: each shard sample is taken right after the reference sample of the same
    operation, and the model's prediction is scaled by how that reference sample compared
    with the reference's median. A shared machine's slow minute then raises both sides of a
    pair alike, and the ratio is the median of the pairs' ratios."""
    print(f"\nThe same jobs on {what}, us of Redis CPU per job, median of "
          f"{opts.runs}; model = (work + trips/job x round trip + worker us/job x timers) x "
          "(the run's reference sample / its median); ratio = measured / model, the median "
          "of the runs' ratios (lowest-highest)")
    print(f"{'operation':<12} {'shard':>5} {'us/job':>7} {'trips/job':>9} "
          f"{'worker us/job':>13} {'model':>7} {'ratio':>6} {'runs':>11}  "
          f"within {TOLERANCE:.0%}")
    for operation, runs in per_shard.items():
        for i in range(2):
            models, ratios = paired(model, operation, [shards[i] for shards in runs],
                                    reference[operation], costs[operation])
            cost = Cost.median([shards[i] for shards in runs])
            ratio = statistics.median(ratios)
            print(f"{operation:<12} {i + 1:5} {cost.us_per_job:7.2f} "
                  f"{cost.trips_per_job:9.3f} {cost.us_of_worker_per_job:13.1f} "
                  f"{statistics.median(models):7.2f} {ratio:6.2f} "
                  f"{min(ratios):5.2f}-{max(ratios):<5.2f}  "
                  f"{'yes' if abs(ratio - 1) <= TOLERANCE else 'NO'}")


def _print_cluster(on_cluster: dict[str, list[ClusterSample]], costs: dict[str, Cost],
                   opts: argparse.Namespace) -> None:
    """The {sq} primary's cost per job beside the single Redis's, and the rest."""
    replicas = opts.cluster_replicas
    shape = f"{replicas} replica each" if replicas else "no replicas"
    print(f"\nThe same jobs on a Redis Cluster of 3 primaries, {shape}: us of Redis CPU "
          f"per job on the primary holding {{sq}}, median of {opts.runs}; others = the other "
          "2 primaries together; cluster calls = CLUSTER and COMMAND calls all nodes answered "
          "(what a cluster client asks when it starts); "
          "ratio = {sq} primary / one Redis"
          + ("; replica = the {sq} primary's replica" if replicas else ""))
    print(f"{'operation':<15} {'us/job':>7} {'trips/job':>9} {'others us/job':>13} "
          f"{'cluster calls/job':>17} {'ratio':>6}" + (f" {'replica us/job':>14}" if replicas
                                                      else ""))
    for operation, samples in on_cluster.items():
        owner = Cost.median([s.owner for s in samples])
        others = statistics.median(s.others.us_per_job for s in samples)
        calls = statistics.median(s.calls_per_job for s in samples)
        fed = [s.replica.us_per_job for s in samples if s.replica is not None]
        print(f"{operation:<15} {owner.us_per_job:7.1f} {owner.trips_per_job:9.3f} "
              f"{others:13.1f} {calls:17.4f} "
              f"{owner.us_per_job / costs[operation].us_per_job:6.2f}"
              + (f" {statistics.median(fed):14.1f}" if fed else ""))


if __name__ == "__main__":
    sys.exit(main())
