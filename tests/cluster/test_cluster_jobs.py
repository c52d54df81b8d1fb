"""Sidequest on a real Redis Cluster (3 primaries, 3 replicas) with worker processes: jobs
pushed every way run exactly once, and every key carries the {sq} hash tag."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from cluster.conftest import Cluster, identity_of
from fault.harness import Ledger, Worker
from helpers import wait_for
from sidequest import Job


class Work(Job):
    name = "fault.Work"


class Flaky(Job):
    name = "fault.Flaky"


def all_keys(cluster: Cluster) -> list[bytes]:
    found: list[bytes] = []
    for port in cluster.primaries():
        found.extend(cluster.node(port).keys("*"))
    return found


def test_push_every_way_runs_each_job_once_under_one_tag(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    accepted = [Work.perform_async(0) for _ in range(20)]
    accepted += Work.perform_bulk([[0]] * 30)
    accepted += [Work.perform_in(0.5, 0) for _ in range(5)]
    assert rc.llen("{sq}queue:default") == 50  # pushed where a Sidekiq-style reader looks
    spawn("-c", "5")
    wait_for(lambda: ledger.done_count() >= len(accepted), 30, "every job to run")
    report = ledger.check(accepted)
    assert not report.lost and not report.duplicates, report.text()
    names = all_keys(cluster)
    assert names, "the cluster holds no keys at all"
    untagged = [n for n in names if not n.startswith(b"{sq}")]
    assert not untagged, f"keys without the {{sq}} tag: {untagged}"


def test_failure_goes_to_retry_and_runs_again_and_retry_0_goes_dead(
        rc: redis.RedisCluster, spawn: Callable[..., Worker], ledger: Ledger) -> None:
    flaky = Flaky.perform_async(1)
    doomed = Flaky.set(retry=0).perform_async(5)
    spawn("-c", "2")
    wait_for(lambda: ledger.counts("done")[flaky] == 1, 30, "the flaky job to succeed on retry")
    assert ledger.counts("start")[flaky] == 2
    wait_for(lambda: rc.zcard("{sq}dead") == 1, 30, "the retry=0 job to reach the dead set")
    assert doomed.encode() in rc.zrange("{sq}dead", 0, -1)[0]
    assert rc.zcard("{sq}retry") == 0


def test_second_worker_requeues_a_killed_workers_jobs(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    accepted: list[Any] = Work.perform_bulk([[0.3]] * 40)
    first = spawn("-c", "4")
    wait_for(lambda: ledger.done_count() >= 4, 30, "the first worker to run some jobs")
    owner = identity_of(first, rc)
    assert owner
    wait_for(lambda: rc.llen(f"{{sq}}sq:inprogress:{owner}") > 0, 10, "jobs in flight")
    first.kill()
    assert rc.llen(f"{{sq}}sq:inprogress:{owner}") > 0  # the killed worker left jobs behind
    started = time.monotonic()
    spawn("-c", "4")
    wait_for(lambda: ledger.done_count() >= len(accepted), 60, "every job to run")
    assert not ledger.check(accepted).lost
    wait_for(lambda: rc.llen(f"{{sq}}sq:inprogress:{owner}") == 0, 10,
             "the dead worker's in-progress list to empty")
    assert time.monotonic() - started < 60
