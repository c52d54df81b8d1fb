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


def unique_locks(cluster: Cluster) -> list[bytes]:
    return [k for k in all_keys(cluster) if k.startswith(b"{sq}sq:unique:")]


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
    wait_for(lambda: rc.zcard("{sq}retry") == 1, 30, "the failed job to be set for a retry")
    [(member, _)] = rc.zrange("{sq}retry", 0, -1, withscores=True)
    assert flaky.encode() in member
    rc.zadd("{sq}retry", {member: time.time()}, xx=True)  # due now, not in 15-25 s
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


def test_a_worker_on_several_queues_polls_them_all(
        spawn: Callable[..., Worker], ledger: Ledger) -> None:
    """Several queues: a worker waits on key tracking with one Redis, and polls on a cluster
    (tracking needs one connection to one server)."""
    worker = spawn("-c", "2", "-q", "high", "-q", "low")
    accepted = [Work.set(queue=q).perform_async(0) for q in ("high", "low") for _ in range(5)]
    wait_for(lambda: ledger.done_count() >= len(accepted), 30, "jobs of both queues to run")
    late = [Work.set(queue="low").perform_async(0) for _ in range(3)]
    wait_for(lambda: ledger.done_count() >= len(accepted) + 3, 30, "jobs pushed while idle")
    report = ledger.check(accepted + late)
    assert not report.lost and not report.duplicates, report.text()
    assert worker.alive, worker.log()


class Unique(Job):
    name = "fault.Record"
    unique_for = 60


def test_unique_jobs_load_their_script_on_an_empty_script_cache(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    """A replica promoted by a failover has no scripts loaded, and a cluster pipeline cannot
    load one: the push and the lock's release must still work."""
    for port in cluster.primaries():
        cluster.node(port).script_flush()
    first = Unique.perform_async(7)
    assert first and Unique.perform_async(7) is None  # the lock holds the duplicate back
    assert unique_locks(cluster)
    spawn("-c", "2")
    wait_for(lambda: ledger.done_count() == 1, 30, "the unique job to run")
    for port in cluster.primaries():
        cluster.node(port).script_flush()
    wait_for(lambda: not unique_locks(cluster), 10, "the lock to be released")
    again = Unique.perform_async(7)
    assert again and again != first
    wait_for(lambda: ledger.done_count() == 2, 30, "the second push to run")
