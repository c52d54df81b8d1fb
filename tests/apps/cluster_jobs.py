"""Jobs for the Redis Cluster feature tests (tests/cluster/test_cluster_features.py), run by
worker subprocesses started with ``-r apps.cluster_jobs``. They write to the fault ledger
(tests/apps/fault_jobs.py), with their own event names where the test needs them.

The limiters are built when this module is imported, as an application's are: before the
worker has created its Redis client (and so before it knows it talks to a cluster).
"""

from __future__ import annotations

import time
from typing import Any

from apps.fault_jobs import record
from sidequest import Job, limiter

CONCURRENT_LIMIT = 2
BUCKET_LIMIT = 3

# A "day" bucket: the test's few seconds never straddle two intervals (but for midnight UTC).
two_at_once = limiter.concurrent("cluster-two-at-once", CONCURRENT_LIMIT, lock_timeout=30,
                                 wait_timeout=20)
three_a_day = limiter.bucket("cluster-three-a-day", BUCKET_LIMIT, "day")


class Concurrent(Job):
    """Holds a concurrent slot for ``seconds``, between its "in" and "out" ledger lines."""

    name = "cluster.Concurrent"

    def perform(self, seconds: float) -> None:
        with two_at_once:
            record("in", self)
            time.sleep(seconds)
            record("out", self)


class Bucketed(Job):
    """Takes one call of the day's bucket; over the limit, OverLimit reschedules it."""

    name = "cluster.Bucketed"

    def perform(self) -> None:
        with three_a_day:
            record("in", self)


class Result(Job):
    """Returns a value that the worker stores for JobStatus."""

    name = "cluster.Result"
    store_result = True

    def perform(self, a: int, b: int) -> dict[str, Any]:
        self.set_progress(0.5, "adding")
        record("done", self)
        return {"sum": a + b}


class Cancellable(Job):
    """Runs until cancelled (at most ``seconds``), then notes "cancelled" in the ledger."""

    name = "cluster.Cancellable"

    def perform(self, seconds: float = 30.0) -> None:
        record("start", self)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.cancelled():
                record("cancelled", self)
                return
            time.sleep(0.05)
        record("done", self)


class BatchDone(Job):
    """A batch's success callback: notes itself with the batch's description."""

    name = "cluster.BatchDone"

    def perform(self, label: str) -> None:
        record("callback", self)


class BatchComplete(Job):
    """A batch's on_complete callback: notes "complete" (on_success notes "callback")."""

    name = "cluster.BatchComplete"

    def perform(self, label: str) -> None:
        record("complete", self)
