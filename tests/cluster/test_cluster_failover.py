"""Failover: the primary serving the {sq} slot is killed (SIGKILL) during a drain; its
replica takes over and the worker carries on."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from cluster.conftest import Cluster, slot_owner
from fault.harness import Ledger, Worker
from helpers import wait_for
from sidequest import Job, RedisUnavailable


class Work(Job):
    name = "fault.Work"


def test_killing_the_primary_loses_no_replicated_push(
        cluster: Cluster, rc: redis.RedisCluster, spawn: Callable[..., Worker],
        ledger: Ledger) -> None:
    """Replication is asynchronous: what the old primary acknowledged in its last moments
    may be missing on the promoted replica. Here every push is confirmed on the replica
    (WAIT) before the kill, so none may be lost; what may be lost is the worker's own late
    writes (a fetch moving a job to its in-progress list, an acknowledgement), which makes
    a job run again: duplicates are allowed, losses are not. Jobs pushed after the failover
    must run too (the worker carries on)."""
    accepted = Work.perform_bulk([[0.02]] * 300)
    old = slot_owner(cluster)
    assert old is not None
    wait_for(lambda: _replicated(cluster, old), 10, "the pushes to reach the replica")
    worker = spawn("-c", "5")
    wait_for(lambda: ledger.done_count() >= 30, 30, "the drain to be under way")
    cluster.kill(old)
    killed_at = time.monotonic()
    wait_for(lambda: (slot_owner(cluster) or old) != old, 30, "a replica to take the slot")
    promoted = time.monotonic() - killed_at
    later = wait_for(_push, 30, "a push to succeed after the failover")
    wait_for(lambda: ledger.done_count() >= len(accepted) + 1, 60, "every job to run")
    report = ledger.check([*accepted, later])
    assert not report.lost, report.text()
    assert worker.alive, worker.log()
    assert promoted < 30


def _replicated(cluster: Cluster, port: int) -> bool:
    """The replica has acknowledged everything the primary wrote so far."""
    info = cluster.node(port).info("replication")
    return bool(info.get("slave0")) and info["slave0"]["offset"] >= info["master_repl_offset"]


def _push() -> str | None:
    try:
        return Work.perform_async(0)
    except RedisUnavailable:  # the cluster may still be electing: said so, and nothing else
        return None


def test_a_read_after_the_primary_died_raises_an_outage_not_a_type_error(
        cluster: Cluster, cluster_url: str) -> None:
    """A cluster pipeline hands a connection error back as a reply: read as data, the first
    read of a warm client after the kill (the dashboard's summary) failed with a TypeError,
    a 500 page, where the next ones said Redis was unreachable (503)."""
    from sidequest.api import Stats
    from sidequest.api.stats import UNREACHABLE_ERRORS, Totals

    Work.perform_async(0)
    Totals.read()  # a live connection to the {sq} primary
    Stats()
    old = slot_owner(cluster)
    assert old is not None
    cluster.procs[old].kill()  # read at once, as the dashboard's next poll may
    for read in (Totals.read, Stats):
        try:
            read()
        except UNREACHABLE_ERRORS:
            pass  # the outage, as such
        except Exception as exc:  # the bug's TypeError, or any other
            raise AssertionError(f"{read.__qualname__} raised {exc!r}") from exc
    cluster.procs[old].wait(10)
