"""Sidequest's features beyond plain jobs on a real Redis Cluster, with worker processes:
scheduled jobs, periodic jobs, unique jobs, rate limiters, batches, stored results,
cancellation and ``sidequest stats``. Each key they write must carry the {sq} hash tag, or a
script or transaction over it fails with CROSSSLOT (or a read misses it)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

import sidequest
import sidequest.connection
from apps import cluster_jobs, cluster_periodic
from apps.cluster_jobs import Bucketed, Cancellable, Concurrent, Result
from apps.fault_jobs import AsyncWork, Record, Work
from cluster.conftest import Cluster, dashboard, identity_of
from fault.harness import ROOT, Ledger, Worker
from helpers import wait_for
from sidequest import Batch, keys, limiter
from sidequest.api import (
    BatchStatus,
    DeadSet,
    JobStatus,
    PeriodicSet,
    Queue,
    ScheduledSet,
    Stats,
    cancel,
)


def all_keys(cluster: Cluster) -> list[bytes]:
    found: list[bytes] = []
    for port in cluster.primaries():
        found.extend(cluster.node(port).keys("*"))
    return found


def assert_all_tagged(cluster: Cluster) -> None:
    untagged = [n for n in all_keys(cluster) if not n.startswith(b"{sq}")]
    assert not untagged, f"keys without the {{sq}} tag: {untagged}"


def unique_locks(cluster: Cluster) -> list[bytes]:
    return [k for k in all_keys(cluster) if k.startswith(b"{sq}sq:unique:")]


def times(ledger: Ledger, event: str) -> dict[str, float]:
    return {e[1]: e[4] for e in ledger.entries() if e[0] == event}


def test_scheduled_unique_result_and_cancel_with_one_worker(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    pushed_at = time.time()
    scheduled = Work.perform_in(1.0, 0)
    unique = Record.set(unique_for=60).perform_async("once")
    assert unique and Record.set(unique_for=60).perform_async("once") is None
    assert unique_locks(cluster), "no unique lock under the tag"
    far = Work.perform_in(3600, 0)
    assert far and cancel(far) is True  # a scheduled job is removed at once
    assert not any(far.encode() in m for m in rc.zrange("{sq}schedule", 0, -1))
    result = Result.perform_async(2, 3)
    awaited = AsyncWork.perform_async(0.1)  # an async def job, on the worker's event loop
    running = Cancellable.perform_async(30)

    spawn("-r", "apps.cluster_jobs", "-c", "4")
    wait_for(lambda: ledger.counts("start")[running] == 1, 30, "the cancellable job to start")
    assert cancel(running) is False  # running: not in a set, it sees the flag instead
    wait_for(lambda: ledger.counts("cancelled")[running] == 1, 30, "the job to see its cancel")
    wait_for(lambda: ledger.counts("done")[scheduled] == 1, 30, "the scheduled job to run")
    assert times(ledger, "start")[scheduled] >= pushed_at + 0.9  # not before its time
    wait_for(lambda: JobStatus(result).state == "succeeded", 30, "the stored result")
    status = JobStatus(result)
    assert status.result == {"sum": 5} and status.ttl and status.ttl > 0
    wait_for(lambda: not unique_locks(cluster), 30, "the unique lock to be released")
    assert ledger.counts("done")[unique] == 1
    wait_for(lambda: ledger.counts("done")[awaited] == 1, 30, "the async job to run")
    again = Record.set(unique_for=60).perform_async("once")
    assert again and again != unique
    assert ledger.counts("start")[far] == 0 and ledger.counts("done")[running] == 0
    assert_all_tagged(cluster)


def max_overlap(ledger: Ledger, jids: list[str]) -> int:
    """The most jobs between their "in" and "out" lines at one moment."""
    edges = sorted((e[4], 1 if e[0] == "in" else -1) for e in ledger.entries()
                   if e[1] in jids and e[0] in ("in", "out"))
    held = most = 0
    for _, step in edges:
        held += step
        most = max(most, held)
    return most


def test_concurrent_and_bucket_limiters_hold_their_limits(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    held = [j for j in Concurrent.perform_bulk([[0.3]] * 6) if j]
    bucketed = [j for j in Bucketed.perform_bulk([[]] * 5) if j]
    spawn("-r", "apps.cluster_jobs", "-c", "8")  # room for all six at once but for the limit
    wait_for(lambda: len(ledger.counts("out")) == 6, 60, "every concurrent job to finish")
    assert max_overlap(ledger, held) <= cluster_jobs.CONCURRENT_LIMIT
    wait_for(lambda: rc.get("{sq}sq:stat:overlimit") == b"2", 30,
             "two bucketed jobs to be put back over the limit")
    ran = [j for j in bucketed if ledger.counts("in")[j]]
    assert len(ran) == cluster_jobs.BUCKET_LIMIT
    # Counted by ten minutes: the two may straddle a boundary.
    span = keys.over_span(time.time())
    assert sum(int(rc.get(f"{{sq}}sq:limiter:{cluster_jobs.three_a_day.name}:over:{n}") or 0)
               for n in (span - 1, span)) == 2
    waiting = [json.loads(m) for m in rc.zrange("{sq}schedule", 0, -1)]
    assert sorted(j["jid"] for j in waiting) == sorted(set(bucketed) - set(ran))
    page = dashboard("/limiters")["/limiters"]
    assert cluster_jobs.three_a_day.name in page and cluster_jobs.two_at_once.name in page
    assert_all_tagged(cluster)


def test_a_limiter_built_before_the_cluster_is_configured_uses_the_tag(
        cluster: Cluster, cluster_url: str, rc: redis.RedisCluster) -> None:
    """An application builds its limiters at import, before its first Redis client decides
    the key names; the limiter must still use the tagged ones."""
    sidequest.connection.reset()  # Sidekiq's names, as in a process that has not connected
    assert keys.RETRY == "retry"  # Sidekiq's names
    early = limiter.concurrent("cluster-early", 1)
    per_day = limiter.bucket("cluster-early-bucket", 1, "day")
    sliding = limiter.window("cluster-early-window", 1, "hour")
    sidequest.configure(redis_url=cluster_url)
    with early:
        assert rc.zcard("{sq}sq:limiter:cluster-early") == 1
    assert rc.zcard("{sq}sq:limiter:cluster-early") == 0
    for full in (per_day, sliding):
        with full:
            pass
        with pytest.raises(limiter.OverLimit):
            full.acquire()
        assert rc.exists(f"{{sq}}sq:limiter:{full.name}")
    assert_all_tagged(cluster)


def test_queues_and_sets_made_before_the_cluster_is_configured_read_it(
        cluster_url: str, rc: redis.RedisCluster) -> None:
    """A Queue or a job set kept from import time (a health check's, say) must read the
    tagged keys, not miss them silently."""
    sidequest.connection.reset()
    assert keys.RETRY == "retry"  # Sidekiq's names
    queue, scheduled, dead = Queue("default"), ScheduledSet(), DeadSet()
    sidequest.configure(redis_url=cluster_url)
    Work.perform_async(0)
    Work.perform_in(3600, 0)
    rc.zadd("{sq}dead", {json.dumps({"class": "X", "args": [], "jid": "d" * 24}): time.time()})
    assert (queue.size, scheduled.size, dead.size) == (1, 1, 1)
    assert queue.key == "{sq}queue:default" and scheduled.name == "{sq}schedule"


def run_cli(cluster_url: str, *args: str) -> str:
    env = {**os.environ, "REDIS_URL": cluster_url}
    env.pop("SIDEQUEST_REDIS_URL", None)
    proc = subprocess.run([sys.executable, "-m", "sidequest", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_batch_calls_back_once_and_stats_count_it(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger, cluster_url: str) -> None:
    batch = Batch(description="cluster batch", on_success=(cluster_jobs.BatchDone, ["b"]))
    with batch.jobs():
        members = [j for j in Work.perform_bulk([[0]] * 8) if j]
        # A child batch: its success counts for the parent, in one script over the keys of
        # both batches.
        child = Batch(description="cluster child", parent=batch,
                      on_success=(cluster_jobs.BatchDone, ["child"]))
        with child.jobs():
            members += [j for j in Work.perform_bulk([[0]] * 2) if j]
    parked = Work.set(queue="cluster-parked").perform_bulk([[0]] * 2)
    worker = spawn("-r", "apps.cluster_jobs", "-c", "4")
    wait_for(lambda: len(ledger.counts("callback")) == 2, 30, "both batches' callbacks")
    status = BatchStatus(batch.bid)
    # Its members: 8 jobs, the child batch and the child's callback.
    assert status.success and status.pending == 0 and status.total == 10
    assert BatchStatus(child.bid).success and BatchStatus(child.bid).total == 2
    assert all(ledger.counts("done")[j] == 1 for j in members)
    # Twelve jobs ran (ten members, two callbacks); once counted, every callback had its turn.
    wait_for(lambda: rc.get("{sq}stat:processed") == b"12", 30, "twelve jobs to be counted")
    assert sum(ledger.counts("callback").values()) == 2
    assert rc.zcard("{sq}schedule") == 0 and rc.llen("{sq}queue:default") == 0

    text = run_cli(cluster_url, "stats")
    assert "Processed: 12" in text and "Failed: 0" in text and "Enqueued: 2" in text, text
    assert any(line.split() == ["cluster-parked", "2"] for line in text.splitlines()), text
    assert parked and all(parked)
    status_text = run_cli(cluster_url, "status")
    owner = identity_of(worker, rc)
    assert owner and owner in status_text, status_text
    assert any(line.split()[:2] == ["cluster-parked", "2"] for line in status_text.splitlines())
    assert worker.reap() == 0, worker.log()  # a worker writes its last metrics as it stops
    pages = dashboard("/batches", "/metrics", "/metrics/fault.Work", "/stats")
    assert batch.bid in pages["/batches"] and "cluster batch" in pages["/batches"]
    assert "fault.Work" in pages["/metrics"]
    assert json.loads(pages["/stats"])["sidequest"]["processed"] == 12
    assert_all_tagged(cluster)


def test_stats_reset_zeroes_the_clusters_totals(
        cluster: Cluster, rc: redis.RedisCluster) -> None:
    rc.set("{sq}stat:processed", 7)
    rc.set("{sq}stat:failed", 3)
    Stats.reset()
    assert (Stats().processed, Stats().failed) == (0, 0)
    assert rc.get("{sq}stat:processed") == b"0" and rc.get("{sq}stat:failed") == b"0"
    Stats.reset("failed")
    assert_all_tagged(cluster)


def periodic_pushes(rc: redis.RedisCluster) -> dict[str, collections.Counter[int]]:
    """Entry name -> how often each tick was pushed."""
    found: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for raw in rc.lrange("{sq}queue:" + cluster_periodic.COUNT_QUEUE, 0, -1):
        job: dict[str, Any] = json.loads(raw)
        found[job["periodic"]][job["periodic_tick"]] += 1
    return found


def test_periodic_cron_ticks_are_pushed_once_by_one_of_two_workers(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker]) -> None:
    """The every-minute entry's state says the previous minute was handled (as if workers had
    run then): the minute that began since is due at once, and must be pushed once. A new
    minute that begins while the workers start makes that one due instead (a missed tick is
    run once, not caught up), so the test starts early in a minute."""
    wait_for(lambda: int(rc.time()[0]) % 60 < 30, 35, "the first half of a minute")
    now = int(rc.time()[0])
    minute = now - now % 60
    rc.hset(f"{{sq}}sq:periodic:state:{cluster_periodic.EVERY_MINUTE}", "tick", minute - 60)
    workers = [spawn("-r", "apps.cluster_periodic") for _ in range(2)]
    for worker in workers:
        wait_for(lambda w=worker: identity_of(w, rc) or not w.alive, 30, "a worker to register")
        assert worker.alive, worker.log()
    wait_for(lambda: periodic_pushes(rc)[cluster_periodic.EVERY_MINUTE], 30,
             "the minute's tick to be pushed")
    start = int(rc.time()[0]) + 1  # both workers have synced by now
    wait_for(lambda: int(rc.time()[0]) >= start + 4, 30, "four seconds of ticks")
    end = int(rc.time()[0]) - 1  # a tick still in flight is not judged
    pushes = periodic_pushes(rc)
    minutes = pushes[cluster_periodic.EVERY_MINUTE]
    # Workers slower than 30 s to start may see the next minute first; either way each
    # minute that was pushed was pushed once.
    assert minutes and all(n == 1 for n in minutes.values()), minutes
    assert set(minutes) <= {minute, minute + 60}, (minute, minutes)
    seconds = pushes[cluster_periodic.EVERY_SECOND]
    assert all(seconds[t] == 1 for t in range(start, end + 1)), seconds
    assert all(n == 1 for n in seconds.values()), seconds
    assert_all_tagged(cluster)


def test_periodic_entries_are_listed_and_paused_through_the_api_and_cli(
        rc: redis.RedisCluster, spawn: Callable[..., Worker], cluster_url: str) -> None:
    spawn("-r", "apps.cluster_periodic")
    wait_for(lambda: periodic_pushes(rc)[cluster_periodic.EVERY_SECOND], 30,
             "the every-second entry's first push")
    entries = {e.name: e for e in PeriodicSet()}
    assert entries[cluster_periodic.EVERY_MINUTE].schedule == "* * * * *"
    assert entries[cluster_periodic.EVERY_SECOND].last_jid
    rows = {line.split()[0]: line for line in run_cli(cluster_url, "periodic").splitlines()}
    assert "* * * * *" in rows[cluster_periodic.EVERY_MINUTE], rows
    assert PeriodicSet().pause(cluster_periodic.EVERY_SECOND)
    paused_at = int(rc.time()[0])
    wait_for(lambda: int(rc.time()[0]) >= paused_at + 3, 30, "three seconds while paused")
    late = [t for t in periodic_pushes(rc)[cluster_periodic.EVERY_SECOND] if t > paused_at + 1]
    assert not late, f"ticks pushed while paused: {late}"
    assert "paused" in run_cli(cluster_url, "periodic")
    page = dashboard("/periodic")["/periodic"]
    assert cluster_periodic.EVERY_MINUTE in page and cluster_periodic.EVERY_SECOND in page


def test_time_is_read_on_the_primary_holding_the_keys(
        cluster: Cluster, cluster_url: str) -> None:
    """Scores and periodic ticks are compared with Redis's clock: the one of the node that
    holds the keys (and answers while they can be reached), not whichever node redis-py
    picked as its default."""
    client: Any = sidequest.connection.client()
    owner = client.get_node_from_key("{sq}queues")
    other = next(n for n in client.get_primaries() if n.name != owner.name)
    client.set_default_node(other)

    def calls(port: int) -> int:
        stats = cluster.node(port).info("commandstats").get("cmdstat_time", {})
        return int(stats.get("calls", 0))

    before = calls(owner.port)
    client.time()
    assert calls(owner.port) == before + 1
