"""What a stretch of work cost one Redis server, and the capacity model built from it.

A Redis server's CPU goes two ways: into the commands (the work a job needs, whatever the
batching) and into each request it reads (waking up, the read and write system calls,
parsing: the same for a request of one command or a script moving fifty jobs). So the model
of docs/scaling.md is, per operation,

    Redis CPU = jobs x work per job + batch round trips x cost of one
                + seconds a worker runs x its timers' cost per second
                + worker starts x the cost of one

A batch round trip is one call of a script that handles many jobs: a worker's fetch (which
also acknowledges the jobs finished since the last) and the scheduler's move of due jobs.
Their number depends on load, which is why a per-job figure alone cannot carry from one
setup to another; the server counts them itself (the ``evalsha`` calls in ``INFO
commandstats``). A push's round trip is one per push, whatever the load, so it is part of
the push's work. The cost of a batch round trip is the slope between two runs of the same
jobs that differ only in batching (a busy worker fetching dozens of jobs a round trip, and
one thread fetching one job at a time). The timers (heartbeat, scheduler polls, the idle
fetch's wake-ups, and the server's own housekeeping) cost what the server spends per second
with an idle worker, less its batch round trips. A worker's start (its connections, its
registration, its first look at the queues) costs the server a few milliseconds once,
measured from launch to a second after the worker registers, less its timers' rate over that
stretch (a run's seconds count from the launch too).
Each operation's work per job is what is left of its measured cost. A shard's cost is
predicted from its own jobs, round trips, seconds and starts, which is what the two-shard
check compares with its measured CPU: a shard with half the jobs batches fewer per round
trip, runs longer per job and pays a worker's start over half the jobs, and the model must
account for all three.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Usage:
    """A snapshot of a server's counters, CPU seconds (user + system) and script calls (the
    batched round trips), and of the clock."""

    cpu: float
    trips: int
    at: float
    #: Microseconds the server spent in LMOVE (a job fetched) and LREM (a job acknowledged).
    fetch_us: float = 0.0
    ack_us: float = 0.0
    #: CLUSTER subcommands and COMMAND answered: what a cluster client asks when it starts
    #: (the slot map, the command table) and when the slot map may have changed.
    cluster_calls: int = 0

    @classmethod
    def of(cls, client: redis.Redis) -> Usage:
        info = client.info("all")

        def stat(command: str, field: str) -> float:
            return float(info.get(f"cmdstat_{command}", {}).get(field, 0))

        return cls(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
                   int(stat("evalsha", "calls") + stat("eval", "calls")), time.monotonic(),
                   stat("lmove", "usec"), stat("lrem", "usec"),
                   sum(int(fields["calls"]) for name, fields in info.items()
                       if name.startswith(("cmdstat_cluster", "cmdstat_command"))
                       and isinstance(fields, dict)))


@dataclass(frozen=True)
class Sample:
    """What ``jobs`` jobs cost one server between two snapshots."""

    jobs: int
    cpu: float
    trips: int
    #: How long a worker ran meanwhile (0 for pushes, where none runs).
    seconds: float = 0.0
    fetch_us: float = 0.0
    ack_us: float = 0.0
    #: Worker processes started meanwhile.
    starts: int = 0

    @classmethod
    def between(cls, jobs: int, before: Usage, after: Usage, worker: bool = False) -> Sample:
        """``worker``: a worker was started after ``before`` and ran until ``after``."""
        return cls(jobs, after.cpu - before.cpu, after.trips - before.trips,
                   after.at - before.at if worker else 0.0,
                   after.fetch_us - before.fetch_us, after.ack_us - before.ack_us,
                   int(worker))

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.jobs, self.cpu + other.cpu, self.trips + other.trips,
                      self.seconds + other.seconds, self.fetch_us + other.fetch_us,
                      self.ack_us + other.ack_us, self.starts + other.starts)

    @property
    def us_per_job(self) -> float:
        return self.cpu / self.jobs * 1e6

    @property
    def trips_per_job(self) -> float:
        return self.trips / self.jobs

    @property
    def seconds_per_job(self) -> float:
        return self.seconds / self.jobs


@dataclass(frozen=True)
class Cost:
    """An operation's medians over several runs."""

    us_per_job: float
    trips_per_job: float
    us_of_worker_per_job: float  # microseconds a worker ran per job
    #: Of us_per_job, the commands that fetch a job (LMOVE) and acknowledge it (LREM).
    fetch_us_per_job: float = 0.0
    ack_us_per_job: float = 0.0
    starts_per_job: float = 0.0

    @classmethod
    def median(cls, samples: Sequence[Sample]) -> Cost:
        return cls(statistics.median(s.us_per_job for s in samples),
                   statistics.median(s.trips_per_job for s in samples),
                   statistics.median(s.seconds_per_job * 1e6 for s in samples),
                   statistics.median(s.fetch_us / s.jobs for s in samples),
                   statistics.median(s.ack_us / s.jobs for s in samples),
                   statistics.median(s.starts / s.jobs for s in samples))


@dataclass(frozen=True)
class Model:
    """The cost of a round trip, of a worker's second and of its start, and each operation's
    work per job besides them."""

    us_per_trip: float
    us_per_second: float
    us_per_start: float
    work: dict[str, float]

    @classmethod
    def fit(cls, costs: dict[str, Cost], batched: str, one_by_one: str, idle: Sample,
            start: Sample) -> Model:
        """The round trip's cost from two runs of the same jobs batched differently (their
        timers' share taken out with the idle worker's cost); the timers' cost from an idle
        worker; a start's from the worker's first stretch, from its launch, less the timers
        over it. The two runs pay one start each for the same jobs, so it does not bend the
        slope."""
        a, b = costs[batched], costs[one_by_one]
        per_trip = (b.us_per_job - a.us_per_job) / (b.trips_per_job - a.trips_per_job)
        per_second = (idle.cpu * 1e6 - per_trip * idle.trips) / idle.seconds
        for _ in range(3):  # the two depend on each other a little; a few rounds settle it
            timers = per_second * (b.us_of_worker_per_job - a.us_of_worker_per_job) / 1e6
            per_trip = (b.us_per_job - a.us_per_job - timers) / (b.trips_per_job
                                                                 - a.trips_per_job)
            per_second = (idle.cpu * 1e6 - per_trip * idle.trips) / idle.seconds
        per_start = (start.cpu * 1e6 - per_trip * start.trips
                     - per_second * start.seconds)
        model = cls(per_trip, per_second, per_start, {})
        for op, cost in costs.items():
            model.work[op] = cost.us_per_job - model.overhead(cost)
        return model

    def overhead(self, cost: Cost) -> float:
        """Microseconds per job of round trips, timers and starts."""
        return (self.us_per_trip * cost.trips_per_job
                + self.us_per_second * cost.us_of_worker_per_job / 1e6
                + self.us_per_start * cost.starts_per_job)

    def predict(self, operation: str, cost: Cost) -> float:
        """Redis CPU microseconds per job of ``operation`` at this many round trips, worker
        seconds and starts a job."""
        return self.work[operation] + self.overhead(cost)
