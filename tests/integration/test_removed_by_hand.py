"""A job removed by hand (the API, the dashboard) never reaches a worker, so the removal
records its end: deleted from a queue, the schedule or the retry set, or cleared with its
queue, it is cancelled to its status and done to its batch; killed, it is dead and a
failure. Its unique identity goes back either way. Real Redis; no worker runs."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from sidequest import Batch, Job
from sidequest.api import BatchStatus, JobStatus, Queue, RetrySet, ScheduledSet
from sidequest.api.queues import digest_of


class Kept(Job):
    queue = "by-hand"
    store_result = True

    def perform(self, n: int) -> None:
        pass


class Unique(Job):
    queue = "by-hand"
    unique_for = 600

    def perform(self, n: int) -> None:
        pass


class Callback(Job):
    queue = "by-hand-callbacks"

    def perform(self) -> None:
        pass


def _batch(push: Any) -> Batch:
    batch = Batch(on_success=(Callback, []), on_complete=(Callback, []))
    with batch.jobs():
        push()
    return batch


def test_deleted_from_a_queue_it_is_cancelled_and_done_to_its_batch(r: redis.Redis) -> None:
    jids: list[str] = []
    batch = _batch(lambda: jids.extend(Kept.perform_bulk([[1], [2], [3]])))
    queue = Queue("by-hand")
    first, second, third = (queue.find_job(jid) for jid in jids)
    assert first is not None and second is not None and third is not None
    assert first.delete()
    assert queue.delete_job(second.raw)
    assert queue.delete_by_reference(0, digest_of(third.raw))
    assert [JobStatus(jid).state for jid in jids] == ["cancelled"] * 3
    status = BatchStatus(batch.bid)
    assert status.success and status.complete and status.pending == 0


def test_delete_by_reference_finds_the_job_at_either_end_of_a_long_queue(
        r: redis.Redis) -> None:
    Kept.perform_bulk([[n] for n in range(1200)])  # longer than the window either side
    for near in (0, 1, 300, -1, -2):
        raw = r.lindex("queue:by-hand", near)
        assert raw is not None
        assert Queue("by-hand").delete_by_reference(near, digest_of(raw.encode())), near
    assert r.llen("queue:by-hand") == 1195


def test_a_cleared_queue_records_each_job_and_gives_unique_identities_back(
        r: redis.Redis) -> None:
    jids: list[str] = []
    batch = _batch(lambda: jids.extend(Kept.perform_bulk([[n] for n in range(1500)])))
    assert Unique.perform_async(7) and Unique.perform_async(7) is None
    Queue("by-hand").clear()
    assert r.llen("queue:by-hand") == 0 and not r.sismember("queues", "by-hand")
    assert {JobStatus(jids[0]).state, JobStatus(jids[-1]).state} == {"cancelled"}
    assert BatchStatus(batch.bid).success, "every cleared member is done"
    assert Unique.perform_async(7), "the identity went back with the cleared job"
    assert not r.keys("sq:cleared:*"), "the held list is gone once recorded"


def test_delete_all_in_the_schedule_records_each_job(r: redis.Redis) -> None:
    jids: list[str] = []
    batch = _batch(lambda: jids.extend(Kept.perform_in(3600, n) for n in range(3)))
    at = time.time() + 3600  # one run time: a scheduled unique job's identity includes it
    assert Unique.perform_at(at, 7) and Unique.perform_at(at, 7) is None
    ScheduledSet().clear()
    left = [json.loads(raw)["class"] for raw in r.zrange("schedule", 0, -1)]
    assert left == [Callback.wire_name()] * 2, "only the batch's callbacks, pushed since"
    assert not r.keys("sq:cleared:*")
    assert [JobStatus(jid).state for jid in jids] == ["cancelled"] * 3
    assert BatchStatus(batch.bid).success, "every cleared member is done"
    assert Unique.perform_async(7), "the identity went back with the cleared job"
    RetrySet().clear()  # nothing there: quiet


def test_clearing_an_empty_or_missing_queue_is_quiet(r: redis.Redis) -> None:
    Queue("never-pushed").clear()
    r.sadd("queues", "emptied")
    Queue("emptied").clear()
    assert not r.sismember("queues", "emptied")


def test_killed_by_hand_it_is_dead_and_a_failure_of_its_batch(r: redis.Redis) -> None:
    jids: list[str] = []
    batch = _batch(lambda: jids.extend([Kept.perform_in(3600, 1), Kept.perform_in(3600, 2)]))
    scheduled = ScheduledSet()
    for jid in jids:
        entry = scheduled.find_job(jid)
        assert entry is not None and entry.kill()
    assert [JobStatus(jid).state for jid in jids] == ["dead", "dead"]
    status = BatchStatus(batch.bid)
    assert status.complete and not status.success and status.failures == 2


def test_kill_all_in_the_retry_set_makes_each_dead(r: redis.Redis) -> None:
    jid = Kept.perform_async(1)
    assert jid
    raw = r.rpop("queue:by-hand")
    assert raw
    r.zadd("retry", {raw.replace('"queue":"by-hand"',
                                 '"queue":"by-hand","retry_count":0,"failed_at":1.0'): 1.0})
    assert RetrySet().kill_all() == 1
    assert JobStatus(jid).state == "dead"

