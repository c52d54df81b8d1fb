"""sidequest.api: Sidekiq::API's semantics over real Redis data."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, timedelta
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, keys
from sidequest.api import (
    DeadSet,
    ProcessSet,
    Queue,
    RetrySet,
    ScheduledSet,
    Stats,
    WorkSet,
)

GATE = threading.Event()


class ApiJob(Job):
    queue = "api"

    def perform(self, *args: Any) -> None:
        GATE.wait(10)


def job_json(jid: str, **extra: Any) -> str:
    return json.dumps({"class": "ApiJob", "args": [1], "jid": jid, "queue": "api",
                       "retry": True, **extra})


def test_stats_totals_queues_and_latency(r: redis.Redis) -> None:
    r.set("stat:processed", 10)
    r.set("stat:failed", 3)
    ApiJob.perform_bulk([[i] for i in range(4)])
    r.lpush("queue:default", job_json("d" * 24, enqueued_at=time.time() - 30))
    r.sadd("queues", "default")
    r.zadd("retry", {job_json("r"): 1})
    r.zadd("schedule", {job_json("s1"): 1, job_json("s2"): 2})
    r.sadd("processes", "host:1:x")
    r.hset("host:1:x", mapping={"info": "{}", "busy": 2})
    stats = Stats()
    assert (stats.processed, stats.failed) == (10, 3)
    assert stats.queues == {"api": 4, "default": 1} and stats.enqueued == 5
    assert (stats.retry_size, stats.scheduled_size, stats.dead_size) == (1, 2, 0)
    assert stats.workers_size == 2 and stats.processes_size == 1
    assert 29 <= stats.default_queue_latency <= 40
    Stats.reset()
    assert Stats().processed == 0


def test_stats_reset_names_the_totals_it_knows(r: redis.Redis) -> None:
    r.set("stat:processed", 4)
    r.set("stat:failed", 2)
    Stats.reset("failed")
    assert r.get("stat:failed") == "0" and r.get("stat:processed") == "4"
    with pytest.raises(ValueError, match=r"'proccessed'.*'processed' and/or 'failed'"):
        Stats.reset("proccessed")
    assert r.get("stat:processed") == "4" and r.get("stat:proccessed") is None


def test_history_reads_daily_keys_and_clamps_days(r: redis.Redis) -> None:
    today = date(2026, 1, 10)
    r.set("stat:processed:2026-01-10", 5)
    r.set("stat:processed:2026-01-08", 7)
    r.set("stat:failed:2026-01-09", 1)
    history = Stats.history(3, start=today)
    assert history["processed"] == {"2026-01-10": 5, "2026-01-09": 0, "2026-01-08": 7}
    assert history["failed"]["2026-01-09"] == 1
    assert len(Stats.history(10**9, start=today)["processed"]) == 1825
    assert len(Stats.history(-5, start=today)["failed"]) == 1
    assert (today - timedelta(days=1824)).isoformat() in Stats.history(5000, start=today)["failed"]


def test_queue_pages_find_delete_and_clear(r: redis.Redis) -> None:
    jids = ApiJob.perform_bulk([[i] for i in range(250)])
    queue = Queue("api")
    assert queue.size == 250 and [q.name for q in Queue.all()] == ["api"]
    newest = queue.page(1, 10)
    assert [rec.args[0] for rec in newest] == list(range(249, 239, -1))
    oldest = queue.page(2, 10, oldest_first=True)
    assert [rec.args[0] for rec in oldest] == list(range(10, 20))
    assert len(list(queue)) == 250  # iterated in pages of 100
    found = queue.find_job(jids[5])
    assert found is not None and found.args == [5] and found.klass.endswith("ApiJob")
    assert found.delete() and queue.find_job(jids[5]) is None and queue.size == 249
    assert not found.delete()
    assert queue.latency >= 0
    assert queue.clear() == 249 and queue.clear() == 0  # the jobs it held; none the 2nd time
    assert queue.size == 0 and not r.sismember("queues", "api")


def test_retry_set_entry_actions(r: redis.Redis) -> None:
    r.zadd("retry", {job_json("a" * 24, retry_count=3, error_class="E"): 100.5,
                     job_json("b" * 24, retry_count=0): 200.0,
                     job_json("c" * 24): 300.0})
    retries = RetrySet()
    assert retries.size == 3
    assert [e.jid for e in retries.page()] == ["a" * 24, "b" * 24, "c" * 24]
    entry = retries.find_job("a" * 24)
    assert entry is not None and entry.score == 100.5 and entry.error_class == "E"
    assert entry.id == "100.5-" + "a" * 24
    assert entry.retry() and not entry.retry()  # the second finds it gone
    (queued,) = [json.loads(p) for p in r.lrange("queue:api", 0, -1)]
    assert queued["retry_count"] == 2 and time.time() - queued["enqueued_at"] < 5
    (b_entry,) = retries.fetch(200.0, "b" * 24)
    assert b_entry.kill() and DeadSet().size == 1
    assert retries.delete(300.0, "c" * 24) == 1 and retries.size == 0
    assert retries.delete(300.0, "c" * 24) == 0


def test_deleting_by_score_and_jid_removes_one_entry_as_sidekiq_does(r: redis.Redis) -> None:
    # One job scheduled twice at one time with other arguments: two entries, one score, one
    # jid. Sidekiq's delete_by_jid removes the first; removing both would drop a job asked for.
    r.zadd("schedule", {job_json("d" * 24, args=[1]): 500.0, job_json("d" * 24, args=[2]): 500.0})
    assert ScheduledSet().delete(500.0, "d" * 24) == 1
    assert ScheduledSet().size == 1


def test_bulk_actions_page_through_and_skip_unreadable(r: redis.Redis) -> None:
    r.zadd("retry", {job_json(f"{i:024x}"): i for i in range(150)})
    r.zadd("retry", {"{not json": 0.5})
    assert RetrySet().retry_all() == 150
    assert r.llen("queue:api") == 150 and r.zrange("retry", 0, -1) == ["{not json"]
    assert RetrySet().kill_all() == 1 and DeadSet().size == 1
    scheduled = ScheduledSet()
    r.zadd("schedule", {job_json(f"s{i}"): i for i in range(3)})
    assert scheduled.add_all_to_queue() == 3 and r.llen("queue:api") == 153


@pytest.mark.parametrize("how", ["retry_all", "kill_all"])
def test_a_job_back_in_the_set_during_a_bulk_move_is_not_moved_twice(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A job retried by "Retry now (all)" that fails again at once is back in the retry set
    (same jid, new payload) while the loop goes on: it is not retried a second time for one
    press of the button (it ran twice, and the count exceeded the button's)."""
    from sidequest.api import sets

    r.zadd("retry", {job_json(f"{i:024x}"): 100 + i for i in range(3)})
    queue_move = sets.JobSet._queue_move
    back: list[str] = []

    def and_fail_again(self: Any, client: Any, entry: Any, move: str) -> Any:
        if entry.jid not in back:  # the worker ran it and it failed: back, due first
            back.append(entry.jid)
            # with the enqueued_at that the move stamped, kept through the failure
            r.zadd("retry", {job_json(entry.jid, retry_count=1, retried_at=time.time(),
                                      enqueued_at=time.time()): 1})
        return queue_move(self, client, entry, move)

    monkeypatch.setattr(sets.JobSet, "_queue_move", and_fail_again)
    assert getattr(RetrySet(), how)() == 3
    assert r.zcard("retry") == 3  # the failures that came back wait for their next retry
    moved = r.lrange("queue:api", 0, -1) if how == "retry_all" else r.zrange("dead", 0, -1)
    assert len(moved) == 3


@pytest.mark.parametrize("how", ["retry_all", "kill_all"])
def test_a_bulk_move_leaves_nothing_when_another_removes_entries_under_it(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Two operators pressed Retry all and Kill all at once (or one double-submitted): an
    entry the other took was counted as staying, and each page after it stepped over a live
    one; both pages said done, and hundreds of 2,000 entries were left."""
    from sidequest.api import bulk, sets

    r.zadd("retry", {job_json(f"{i:024x}"): i for i in range(bulk.PAGE + 50)})
    queue_move = sets.JobSet._queue_move
    taken: list[str] = []

    def another_takes_some(self: Any, client: Any, entry: Any, move: str) -> Any:
        if len(taken) < 5 and entry.jid not in taken:  # the other operator was first
            taken.append(entry.jid)
            r.zrem("retry", entry.raw.decode())
        return queue_move(self, client, entry, move)

    monkeypatch.setattr(sets.JobSet, "_queue_move", another_takes_some)
    assert getattr(RetrySet(), how)() == bulk.PAGE + 45
    assert r.zcard("retry") == 0, "live entries were stepped over"


def test_a_bulk_move_leaves_nothing_when_an_entry_it_stepped_over_is_removed(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable entry stays where it is, and is stepped over; another operator then
    deleted it, which no move's answer shows, and the next page stepped over a live job."""
    from sidequest.api import bulk, sets

    r.zadd("retry", {"{not json": 0.5})
    r.zadd("retry", {job_json(f"{i:024x}"): 1 + i for i in range(bulk.PAGE + 50)})
    queue_move = sets.JobSet._queue_move

    def then_another_deletes_it(self: Any, client: Any, entry: Any, move: str) -> Any:
        if entry.jid == f"{bulk.PAGE - 2:024x}":  # late in the first page
            r.zrem("retry", "{not json")
        return queue_move(self, client, entry, move)

    monkeypatch.setattr(sets.JobSet, "_queue_move", then_another_deletes_it)
    assert RetrySet().retry_all() == bulk.PAGE + 50
    assert r.zcard("retry") == 0, "a live entry was stepped over"
    assert DeadSet().kill_all() == 0  # its jobs are dead already: nothing, and it ends


def test_add_to_queue_for_all_moves_a_rate_limited_job_once(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full limiter puts a job back in the schedule with its jid and its stamps: the move
    read it again and sent it on, up to four times per press (each a step toward the dead
    set at max_reschedules), or for ever when it came back within one read."""
    from sidequest.api import bulk, sets

    r.zadd("schedule", {job_json(f"{i:024x}"): 100 + i for i in range(3)})
    queue_move = sets.JobSet._queue_move
    moves: list[str] = []

    def and_the_limiter_is_full(self: Any, client: Any, entry: Any, move: str) -> Any:
        moved = queue_move(self, client, entry, move)
        moves.append(entry.jid)
        if len(moves) < 50:  # the worker ran it at once; over the limit, it is back, later
            later = {**json.loads(entry.raw), "overlimit_count": 1,
                     "enqueued_at": time.time()}  # the move's stamp, kept by the limiter
            r.zadd("schedule", {json.dumps(later): time.time() + 5})
        return moved

    monkeypatch.setattr(sets.JobSet, "_queue_move", and_the_limiter_is_full)
    assert ScheduledSet().add_all_to_queue() == 3
    assert sorted(moves) == sorted(set(moves)) and len(moves) <= bulk.PASSES * 3, moves


def test_entries_sharing_a_jid_from_before_a_bulk_move_are_each_moved(r: redis.Redis) -> None:
    # One job scheduled twice with other arguments (same jid): both were listed when the
    # button was pressed, so both go.
    # A page of others between them: the second is read in a later round trip.
    from sidequest.api.bulk import PAGE

    r.zadd("schedule", {job_json("d" * 24, args=[1]): 1, job_json("d" * 24, args=[2]): 10**6})
    r.zadd("schedule", {job_json(f"{i:024x}"): 10 + i for i in range(PAGE)})
    assert ScheduledSet().add_all_to_queue() == PAGE + 2
    assert r.llen("queue:api") == PAGE + 2 and r.zcard("schedule") == 0


def test_a_shared_jid_entry_after_a_page_another_shifted_is_still_moved(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another operator deleted an entry the first read stepped over, so that read stepped
    over the first entry of the next page too: a job scheduled twice (same jid), whose other
    entry was moved already. The reads after the first skipped every jid moved once, and it
    was left behind."""
    from sidequest.api import bulk, sets

    shared = "f" * 24
    r.zadd("retry", {"{not json": 0.5, job_json(shared, args=["a"]): 1})
    r.zadd("retry", {job_json(f"{i:024x}"): 2 + i for i in range(bulk.PAGE - 2)})
    r.zadd("retry", {job_json(shared, args=["b"]): 500})  # the first of the second page
    r.zadd("retry", {job_json(f"{i + 1000:024x}"): 600 + i for i in range(10)})
    queue_move = sets.JobSet._queue_move

    def then_another_deletes_it(self: Any, client: Any, entry: Any, move: str) -> Any:
        if entry.jid == f"{bulk.PAGE - 3:024x}":
            r.zrem("retry", "{not json")
        return queue_move(self, client, entry, move)

    monkeypatch.setattr(sets.JobSet, "_queue_move", then_another_deletes_it)
    assert RetrySet().retry_all() == bulk.PAGE + 10
    assert r.zcard("retry") == 0


def test_a_job_back_with_a_worker_clock_behind_is_not_moved_again(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job failed again at once on a worker whose clock runs 2 s behind the dashboard's:
    its failure stamps were older than the press, so it was taken for an entry from before
    and moved again, at each step of the read, dozens of times for one press."""
    from sidequest.api import bulk, sets

    r.zadd("retry", {job_json(f"{i:024x}"): 100 + i for i in range(3)})
    queue_move = sets.JobSet._queue_move
    moves: list[str] = []

    def fails_again_behind(self: Any, client: Any, entry: Any, move: str) -> Any:
        moves.append(entry.jid)
        if len(moves) < 30:
            behind = time.time() - 2
            back = {**json.loads(entry.raw), "retry_count": 1, "retried_at": behind,
                    "failed_at": behind, "enqueued_at": time.time(), "try": len(moves)}
            r.zadd("retry", {json.dumps(back): 1})  # due first: the read meets it at once
        return queue_move(self, client, entry, move)

    monkeypatch.setattr(sets.JobSet, "_queue_move", fails_again_behind)
    assert RetrySet().retry_all() == 3
    assert sorted(moves) == sorted(set(moves)), moves
    assert len(moves) == 3 and bulk.PASSES >= 2


def test_dead_set_newest_first_scan_and_clear(r: redis.Redis) -> None:
    dead = DeadSet()
    for i in range(120):
        dead.kill(job_json(f"{i:024x}", error_message=f"boom {i}"), when=1000 + i)
    entries = list(dead)
    assert len(entries) == 120 and entries[0].jid == f"{119:024x}"
    hits = dead.scan("boom 11")
    expected = ["boom 11", *[f"boom {i}" for i in range(110, 120)]]
    assert sorted(e.error_message or "" for e in hits) == expected
    assert dead.scan('*?[') == []  # glob characters are matched literally
    dead.clear()
    assert dead.size == 0


def test_process_set_prunes_and_controls_a_live_worker(r: redis.Redis) -> None:
    r.sadd("processes", "gone:1:abc")  # its hash expired long ago
    GATE.clear()
    ApiJob.perform_async("x")
    with running_worker(embedded=False, queues=(("api", 0),), tag="api-test") as worker:
        wait_for(lambda: r.hget(worker.identity, "busy") == "1", what="busy beat")
        # A reaper thread left by an earlier test may have run the (once a minute) cleanup
        # since the flush; the read below must be the one that prunes.
        r.delete(keys.PROCESS_CLEANUP)
        (proc,) = ProcessSet().processes()
        assert proc.identity == worker.identity and proc.tag == "api-test"
        assert proc.busy == 1 and proc.concurrency == 5 and proc.queues == ["api"]
        assert not r.sismember("processes", "gone:1:abc") and not proc.stopping
        (work,) = list(WorkSet())
        assert work.process == worker.identity and work.queue == "api"
        assert work.job.klass.endswith("ApiJob") and WorkSet().size == 1
        proc.quiet()
        wait_for(lambda: ProcessSet(clean=False).processes()[0].stopping, what="quiet")
        GATE.set()
        proc.stop()
        wait_for(worker.stop_requested.is_set, what="remote stop")


def test_workset_reads_legacy_and_object_payloads(r: redis.Redis) -> None:
    r.sadd("processes", "ruby:1:abc")
    r.hset("ruby:1:abc", mapping={"info": json.dumps({"hostname": "ruby"}), "busy": 2})
    r.hset("ruby:1:abc:workers", "t1", json.dumps(
        {"queue": "default", "payload": job_json("w1"), "run_at": 5}))
    r.hset("ruby:1:abc:work", "t2", json.dumps(
        {"queue": "default", "payload": json.loads(job_json("w2")), "run_at": 3}))
    works = list(WorkSet())
    assert [w.job.jid for w in works] == ["w2", "w1"] and WorkSet().size == 2
