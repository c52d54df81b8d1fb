"""A killed Sidequest process leaves the Busy page when its jobs are recovered, not a minute
later when its hashes expire: the reaper deletes its Sidekiq-format entries in the same step,
and the API hides a Sidequest process whose lease is gone even before that. Ruby Sidekiq's
processes are never touched. A process that was only cut off registers again in full at its
next beat."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from helpers import FAST
from sidequest import connection, keys
from sidequest.api import ProcessSet, WorkSet
from sidequest.api.stats import Totals
from sidequest.config import build
from sidequest.worker.heartbeat import Heartbeat
from sidequest.worker.reaper import Reaper
from sidequest.worker.requeue import requeue_list
from sidequest.worker.state import ProcessState

JOB = json.dumps({"class": "Slow", "args": [40], "jid": "d" * 24, "queue": "pq"})


def beating(identity: str, *jobs: str) -> Heartbeat:
    """A Sidequest process as its heartbeat registers it, running ``jobs`` (each also in its
    in-progress list, as after a fetch)."""
    state = ProcessState()
    for n, raw in enumerate(jobs):
        state.started(f"t{n}", {"queue": "pq", "payload": raw, "run_at": int(time.time())})
        connection.client().lpush(keys.inprogress(identity), raw)
    heartbeat = Heartbeat(build(**FAST), identity, connection.client(), state, lambda _: None)
    heartbeat.beat()
    return heartbeat


def ruby_process(r: redis.Redis, identity: str) -> None:
    """A Ruby Sidekiq process: no lease, not in sq:processes."""
    r.sadd("processes", identity)
    r.hset(identity, mapping={"info": json.dumps({"hostname": "ruby"}), "busy": 1})
    r.hset(f"{identity}:work", "t1", json.dumps({"queue": "q", "payload": JOB, "run_at": 1}))


def kill(r: redis.Redis, identity: str) -> None:
    """SIGKILL, as Redis sees it once the lease's TTL is over."""
    r.delete(keys.lease(identity))


def keys_of(r: redis.Redis, identity: str) -> list[str]:
    return sorted(r.scan_iter(f"*{identity}*"))


def test_the_reaper_deletes_a_dead_process_s_entries_with_its_jobs(r: redis.Redis) -> None:
    beating("dead:1:aaaa", JOB)
    beating("idle:2:bbbb")  # dead too, with nothing in flight
    beating("live:3:cccc", JOB)
    ruby_process(r, "ruby:4:dddd")
    live_keys, ruby_keys = keys_of(r, "live:3:cccc"), keys_of(r, "ruby:4:dddd")
    kill(r, "dead:1:aaaa")
    kill(r, "idle:2:bbbb")
    r.set(keys.lease("me:5:eeee"), 1, px=60_000)  # the reaper's own process is alive
    assert Reaper(build(**FAST), "me:5:eeee", connection.client(), threading.Event()).reap() == 1
    assert r.lrange(keys.queue("pq"), 0, -1) == [JOB]
    # Nothing named after the dead processes is left: not in `processes`, no hash, no work.
    assert keys_of(r, "dead:1:aaaa") == [] and keys_of(r, "idle:2:bbbb") == []
    assert r.smembers("processes") == {"live:3:cccc", "ruby:4:dddd"}
    assert r.smembers(keys.SQ_PROCESSES) == {"live:3:cccc"}
    assert keys_of(r, "live:3:cccc") == live_keys and keys_of(r, "ruby:4:dddd") == ruby_keys


def test_a_stop_or_a_lease_back_leaves_the_entries_alone(r: redis.Redis) -> None:
    beating("back:1:aaaa", JOB)
    registered = keys_of(r, "back:1:aaaa")
    assert requeue_list(connection.client(), "back:1:aaaa", "reap", max_deaths=3,
                        deaths_ttl=60) == (-1, 0)  # its lease is there: alive
    assert keys_of(r, "back:1:aaaa") == registered
    # A graceful stop requeues first, then its heartbeat's clear() leaves the process set.
    assert requeue_list(connection.client(), "back:1:aaaa", "stop", max_deaths=3,
                        deaths_ttl=60) == (1, 0)
    assert r.sismember("processes", "back:1:aaaa") and r.exists("back:1:aaaa:work")
    assert r.hget("back:1:aaaa", "info") is not None


def test_a_process_cut_off_past_its_lease_registers_again_at_its_next_beat(
    r: redis.Redis,
) -> None:
    heartbeat = beating("cut:1:aaaa", JOB)
    registered = keys_of(r, "cut:1:aaaa")
    kill(r, "cut:1:aaaa")  # no beat reached Redis for a lease's time
    requeue_list(connection.client(), "cut:1:aaaa", "reap", max_deaths=3, deaths_ttl=60)
    assert not r.sismember("processes", "cut:1:aaaa") and not r.exists("cut:1:aaaa")
    heartbeat.beat()  # Redis reachable again
    # Everything but the in-progress list, which the reaper emptied (its job is requeued).
    assert keys_of(r, "cut:1:aaaa") == [k for k in registered if "inprogress" not in k]
    assert r.sismember("processes", "cut:1:aaaa") and r.sismember(keys.SQ_PROCESSES,
                                                                   "cut:1:aaaa")
    assert json.loads(r.hget("cut:1:aaaa", "info"))["identity"] == "cut:1:aaaa"
    assert [w.job.jid for w in WorkSet()] == ["d" * 24]


def test_the_api_hides_a_sidequest_process_whose_lease_is_gone(r: redis.Redis) -> None:
    beating("dead:1:aaaa", JOB)
    beating("live:2:bbbb", JOB)
    ruby_process(r, "ruby:3:cccc")  # no lease either, and shown: Ruby has none
    kill(r, "dead:1:aaaa")  # and no reaper has run yet
    assert [p.identity for p in ProcessSet()] == ["live:2:bbbb", "ruby:3:cccc"]
    assert len(ProcessSet()) == ProcessSet().size == 2
    # The dashboard's tiles: the dead process's job is waiting to run again, not running.
    totals = Totals.read()
    assert (totals.busy, totals.processes) == (2, 2), totals
    assert sorted(w.process for w in WorkSet()) == ["live:2:bbbb", "ruby:3:cccc"]
    assert WorkSet().size == 2
    assert r.exists("dead:1:aaaa", "dead:1:aaaa:work") == 2  # hidden, not deleted


def test_jobs_awaiting_recovery_are_counted_and_shown(r: redis.Redis) -> None:
    # Until a Sidequest worker's reaper runs (none may: a shop of Ruby workers), a dead
    # process's jobs are in no queue and on no page: these are where they are said.
    from sidequest.api import awaiting_recovery
    from sidequest.monitor import render_stats, render_status

    beating("dead:1:aaaa", JOB, JOB.replace("d" * 24, "e" * 24))
    beating("live:2:bbbb", JOB)
    beating("idle:3:cccc")
    kill(r, "dead:1:aaaa")
    kill(r, "idle:3:cccc")  # dead too, but nothing of it waits
    assert awaiting_recovery() == {"dead:1:aaaa": 2}
    assert ("Awaiting recovery: 2 jobs of 1 stopped process (dead:1:aaaa); a running Sidequest"
            " worker puts them back in their queues (Ruby Sidekiq does not)") in render_status()
    assert any(line.startswith("Awaiting recovery: 2 jobs") for line in render_stats())
    Reaper(build(**FAST), "live:2:bbbb", connection.client(), threading.Event()).reap()
    assert awaiting_recovery() == {}
    assert not any(line.startswith("Awaiting") for line in render_status() + render_stats())


def test_a_process_known_dead_is_recovered_with_its_quarantine_lock(r: redis.Redis) -> None:
    # A -P supervisor saw it die: its replacement recovers it at once, lease or not, and
    # frees the quarantine lock it held (the suspects would otherwise wait out its TTL).
    beating("gone:1:aaaa", JOB)  # its lease is still alive
    r.set(keys.QUARANTINE_LOCK, "gone:1:aaaa", px=60_000)
    Reaper(build(**FAST), "new:2:bbbb", connection.client(), threading.Event()).recover_gone(
        "gone:1:aaaa")
    assert r.lrange("queue:pq", 0, -1) == [JOB]
    assert keys_of(r, "gone:1:aaaa") == [] and not r.exists(keys.QUARANTINE_LOCK)
    r.set(keys.QUARANTINE_LOCK, "other:3:cccc", px=60_000)  # another's lock stays
    Reaper(build(**FAST), "new:2:bbbb", connection.client(), threading.Event()).recover_gone(
        "gone:1:aaaa")
    assert r.get(keys.QUARANTINE_LOCK) == "other:3:cccc"


def test_a_reaper_whose_own_lease_lapsed_takes_no_other_process_for_dead(
        r: redis.Redis) -> None:
    """Redis refused every process's writes for longer than a lease (a failover waiting for a
    replica): all leases lapsed, the live ones' with the reaper's own. Before, the first
    reaper back took the others for dead and ran their jobs a second time."""
    beating("peer:1:aaaa", JOB)
    kill(r, "peer:1:aaaa")  # its lease lapsed in the outage: alive, renewing at its next beat
    reaper = Reaper(build(**FAST), "me:5:eeee", connection.client(), threading.Event())
    assert reaper.reap() == 0  # its own lease lapsed as well
    r.set(keys.lease("me:5:eeee"), 1, px=60_000)  # its own heartbeat renewed it
    assert reaper.reap() == 0, "the others are given a lease's length to renew theirs"
    assert r.llen(keys.queue("pq")) == 0
    assert reaper._own_lapsed is not None
    reaper._own_lapsed -= build(**FAST).lease_ttl + 1  # a lease's length has passed
    assert reaper.reap() == 1  # still lapsed a lease later: dead
    assert r.lrange(keys.queue("pq"), 0, -1) == [JOB]


def test_after_its_own_renewal_gap_a_reaper_waits_for_the_others_to_renew(
        r: redis.Redis) -> None:
    """Writes refused for longer than a lease, then back: the reaper may not even have run
    while its own lease was gone (its cleanup write failed), so the heartbeat says so."""
    me = beating("me:5:eeee")
    beating("peer:1:aaaa", JOB)
    kill(r, "peer:1:aaaa")  # lapsed in the outage; it renews at its next beat
    reaper = Reaper(build(**FAST), "me:5:eeee", connection.client(), threading.Event(),
                    in_doubt=me.leases_in_doubt)
    assert me._last_renewal is not None
    me._last_renewal -= build(**FAST).lease_ttl + 1  # beats failed meanwhile
    me.beat()
    assert me.leases_in_doubt()
    assert reaper.reap() == 0 and r.llen(keys.queue("pq")) == 0
    me.doubt_until = 0.0  # a lease's length later
    assert reaper.reap() == 1


def test_a_record_lost_between_beats_is_said_and_leases_are_doubted(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    heartbeat = beating("lost:1:aaaa")
    heartbeat.beat()
    assert "lost this worker's process record" not in caplog.text  # an ordinary beat
    r.flushdb()
    heartbeat.beat()
    assert "Redis lost this worker's process record" in caplog.text
    assert heartbeat.leases_in_doubt()


def test_a_record_gone_after_the_lease_s_time_is_not_taken_for_a_loss(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    heartbeat = beating("slow:1:aaaa")
    # Past the lease: a reaper may have removed the record (the process was cut off).
    time.sleep(FAST["lease_ttl"])
    r.delete(keys.process("slow:1:aaaa"))
    heartbeat.beat()
    assert "lost this worker's process record" not in caplog.text
    assert r.exists(keys.process("slow:1:aaaa"))


def test_a_stop_after_the_record_was_lost_leaves_none_that_never_lapses(
        r: redis.Redis) -> None:
    # clear() wrote "quiet" into a record Redis had lost, making one with no TTL at all.
    heartbeat = beating("gone:1:aaaa")
    r.delete(keys.process("gone:1:aaaa"))
    heartbeat.clear()
    assert 0 < r.ttl(keys.process("gone:1:aaaa")) <= 60
