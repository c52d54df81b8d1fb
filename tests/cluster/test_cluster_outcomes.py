"""What becomes of jobs on a real Redis Cluster beyond a plain success: a batch whose member
dies calls on_complete and never on_success, a unique lock held until the job starts, a job
fetched after its deadline dropped and counted, and the Prometheus figures read from the
cluster. Each of these writes or reads its own keys (batch sets, unique locks, the expired
counter, the metrics hashes), which must carry the {sq} tag like every other."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from apps import cluster_jobs
from apps.fault_jobs import Flaky, Record, Work
from cluster.conftest import Cluster
from cluster.test_cluster_features import assert_all_tagged, unique_locks
from fault.harness import Ledger, Worker
from helpers import wait_for
from sidequest import Batch
from sidequest.api import BatchStatus, DeadSet, Queue, RetrySet, Stats
from sidequest.contrib.prometheus import SidequestCollector


def test_a_dead_member_completes_the_batch_without_success(
        cluster: Cluster, spawn: Callable[..., Worker], ledger: Ledger) -> None:
    batch = Batch(description="one dies", on_success=(cluster_jobs.BatchDone, ["s"]),
                  on_complete=(cluster_jobs.BatchComplete, ["c"]))
    with batch.jobs():
        fine = Work.perform_bulk([[0]] * 3)
        doomed = Flaky.set(retry=0).perform_async(5)  # fails once: no retries, so dead
    spawn("-r", "apps.cluster_jobs", "-c", "4")
    wait_for(lambda: ledger.counts("complete"), 30, "on_complete")
    status = wait_for(lambda: (s := BatchStatus(batch.bid)).complete and s, 30, "complete")
    assert status.failed_jids == [doomed] and not status.success and status.pending == 1
    assert all(ledger.counts("done")[jid] == 1 for jid in fine)
    # The batch hears of the failure as the exception leaves the job's middleware, a moment
    # before the worker files the job in the dead set: wait for that, do not race it.
    wait_for(lambda: [entry.jid for entry in DeadSet()] == [doomed], 10, "the dead entry")
    # Callbacks are pushed when the last member ends: once the queue is empty, every one
    # that was pushed has run.
    wait_for(lambda: Queue("default").size == 0, 30, "the queue to empty")
    assert sum(ledger.counts("complete").values()) == 1
    assert not ledger.counts("callback"), "on_success ran for a batch with a dead member"
    assert_all_tagged(cluster)


def test_a_lock_held_until_start_frees_the_arguments_while_the_job_runs(
        cluster: Cluster, spawn: Callable[..., Worker], ledger: Ledger) -> None:
    until_start = Work.set(unique_for=60, unique_until="start")
    first = until_start.perform_async(3)
    assert first and until_start.perform_async(3) is None  # locked while it waits
    assert unique_locks(cluster)
    spawn("-r", "apps.cluster_jobs", "-c", "2")
    wait_for(lambda: ledger.counts("start")[first] == 1, 30, "the first job to start")
    wait_for(lambda: not unique_locks(cluster), 30, "the lock to be released at start")
    assert ledger.counts("done")[first] == 0, "the lock outlived the start, not the run"
    second = until_start.perform_async(3)
    assert second and second != first
    wait_for(lambda: ledger.counts("done")[second] == 1, 30, "the second job to run")
    assert_all_tagged(cluster)


def test_a_job_fetched_after_its_deadline_is_dropped_and_counted(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    stale = Record.set(expires_in=0.2).perform_async("stale")
    assert stale
    deadline = time.time() + 0.3  # past its expires_at, which was set at the push
    wait_for(lambda: time.time() > deadline, 5, "the deadline to pass")
    fresh = Record.set(expires_in=60).perform_async("fresh")
    spawn("-r", "apps.cluster_jobs", "-c", "2")
    wait_for(lambda: ledger.counts("done")[fresh] == 1, 30, "the fresh job to run")
    wait_for(lambda: rc.get("{sq}sq:stat:expired") == b"1", 30, "the stale job to be counted")
    assert ledger.counts("start")[stale] == 0
    assert Stats().expired == 1 and RetrySet().size == 0 and DeadSet().size == 0
    assert_all_tagged(cluster)


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(SidequestCollector())
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_prometheus_reads_the_clusters_queues_totals_and_classes(
        cluster: Cluster, spawn: Callable[..., Worker], ledger: Ledger) -> None:
    ran = Work.perform_bulk([[0]] * 5)
    Work.set(queue="cluster-parked").perform_bulk([[0]] * 2)
    worker = spawn("-r", "apps.cluster_jobs", "-c", "2")
    wait_for(lambda: all(ledger.counts("done")[jid] == 1 for jid in ran), 30, "five jobs")
    assert worker.reap() == 0, worker.log()  # it writes its last metrics as it stops
    found = scrape()
    assert found[("sidequest_processed_total", ())] == 5
    assert found[("sidequest_queue_size", (("queue", "cluster-parked"),))] == 2
    assert found[("sidequest_job_runs_last_hour", (("class", "fault.Work"),))] == 5
    assert found[("sidequest_job_failures_last_hour", (("class", "fault.Work"),))] == 0
    assert_all_tagged(cluster)


def test_a_batch_push_is_one_transaction_on_the_node_of_its_slot(
        cluster: Cluster, rc: redis.RedisCluster) -> None:
    """Its members and their jobs are written together or not at all, as on one Redis: a cut
    halfway would otherwise leave members the batch waits for and no job to run."""
    node = rc.get_node_from_key("{sq}queue:default")
    batch = Batch()
    with batch.jobs():
        before = rc.get_redis_connection(node).info("commandstats").get("cmdstat_exec", {})
        pushed = Work.perform_bulk([[0]] * 5)
    after = rc.get_redis_connection(node).info("commandstats").get("cmdstat_exec", {})
    assert after.get("calls", 0) == before.get("calls", 0) + 1, (before, after)
    assert BatchStatus(batch.bid).total == 5 and all(pushed)
