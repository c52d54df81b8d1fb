"""Resharding: the {sq} slot moves to another primary (CLUSTER SETSLOT IMPORTING/MIGRATING,
MIGRATE of its keys a few at a time, SETSLOT NODE) while a worker drains a queue."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from cluster.conftest import Cluster, identity_of, slot_owner
from fault.harness import Ledger, Worker
from helpers import wait_for
from sidequest import Job, keys

SLOT = redis.cluster.key_slot(b"{sq}")


class Work(Job):
    name = "fault.Work"


def test_moving_the_slot_mid_drain_runs_every_job(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    """While the slot migrates, commands on keys already moved get ASK (redis-py follows
    it), and a transaction or script whose keys are split between the two nodes gets
    TRYAGAIN: it has no effect and Sidequest's loops retry it, so nothing is lost. At least
    once is what is promised (a retried acknowledgement could in principle find the job
    requeued by then); the run below also checks that no job ran twice, which is what
    happens in practice since every failed command had no effect."""
    accepted = Work.perform_bulk([[0.01]] * 400)
    worker = spawn("-c", "5")
    wait_for(lambda: ledger.done_count() >= 20, 30, "the drain to be under way")
    source = slot_owner(cluster)
    assert source is not None
    target = next(p for p in cluster.primaries() if p != source)
    _migrate(cluster, source, target)
    assert slot_owner(cluster) == target
    late = Work.perform_async(0)  # through the new owner
    wait_for(lambda: ledger.done_count() >= len(accepted) + 1, 60, "every job to run")
    report = ledger.check([*accepted, late])
    assert not report.lost, report.text()
    assert not report.duplicates, report.text()
    assert worker.alive, worker.log()
    assert cluster.node(source).execute_command("CLUSTER", "COUNTKEYSINSLOT", SLOT) == 0


def test_the_lease_is_renewed_while_the_heartbeat_is_refused_mid_migration(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    """A heartbeat's transaction over keys split between the two nodes is refused for as
    long as the migration lasts (minutes, for a slot of millions of keys). The lease must
    outlive it, else a reaper would take the running job, and it would run twice."""
    running = Work.perform_async(30)
    worker = spawn("-c", "2", lease_ttl=3, heartbeat_interval=1)
    wait_for(lambda: ledger.counts("start")[running] == 1, 30, "the long job to start")
    owner = wait_for(lambda: identity_of(worker, rc), 30, "the worker's first heartbeat")
    work = keys.work(owner)
    wait_for(lambda: rc.exists(work), 30, "the heartbeat that lists the running job")
    source = slot_owner(cluster)
    assert source is not None
    target = next(p for p in cluster.primaries() if p != source)
    src, dst = cluster.node(source), cluster.node(target)
    ids = [n.execute_command("CLUSTER", "MYID") for n in (src, dst)]
    dst.execute_command("CLUSTER", "SETSLOT", SLOT, "IMPORTING", ids[0])
    src.execute_command("CLUSTER", "SETSLOT", SLOT, "MIGRATING", ids[1])
    try:
        # The work hash moves, the lease stays: the heartbeat's UNLINK of the one is
        # answered ASK inside its MULTI, so the whole transaction is refused.
        src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", work)
        held_until = time.monotonic() + 6.0  # twice the lease
        while time.monotonic() < held_until:
            assert _on_source(src, keys.lease(owner)), "the lease expired mid-migration"
            time.sleep(0.2)
    finally:
        for name in src.execute_command("CLUSTER", "GETKEYSINSLOT", SLOT, 100_000):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", name)
        for node in (dst, src, *(cluster.node(p) for p in cluster.primaries()
                                 if p not in (source, target))):
            node.execute_command("CLUSTER", "SETSLOT", SLOT, "NODE", ids[1])
    assert "heartbeat: Redis error" in worker.log(), "the heartbeat was never refused"
    assert worker.alive, worker.log()


def _on_source(src: redis.Redis, name: str) -> bool:
    try:
        return bool(src.exists(name))
    except redis.exceptions.AskError:  # not there, and the slot migrating: "ask the target"
        return False


def _migrate(cluster: Cluster, source: int, target: int) -> None:
    src, dst = cluster.node(source), cluster.node(target)
    src_id, dst_id = (n.execute_command("CLUSTER", "MYID") for n in (src, dst))
    dst.execute_command("CLUSTER", "SETSLOT", SLOT, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", SLOT, "MIGRATING", dst_id)
    moved = 0
    while True:
        names = src.execute_command("CLUSTER", "GETKEYSINSLOT", SLOT, 3)
        if not names:
            break
        src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *names)
        moved += len(names)
        time.sleep(0.01)  # a few at a time: the worker runs against a half-moved slot
    for node in (dst, src, *(cluster.node(p) for p in cluster.primaries()
                             if p not in (source, target))):
        node.execute_command("CLUSTER", "SETSLOT", SLOT, "NODE", dst_id)
    assert moved > 0
