"""The periodic poller in an in-process worker against a real Redis: ticks pushed once with
the payload of a normal push, catch-up on and off, pause, removal of entries no longer
defined, the outcome of the last run, and recovery when Redis loses its data."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import sidequest
from helpers import running_worker, wait_for
from sidequest import connection, keys, periodic_jobs
from sidequest.api import PeriodicSet
from sidequest.worker.periodic import register, remove

QUEUE = "periodic-test"  # no worker in these tests reads it, except where it says so


class Beat(sidequest.Job):
    name = "tests.Beat"

    def perform(self, label: str = "") -> None:
        if label == "fail":
            raise RuntimeError("failed on purpose")
        if label == "full":  # as a full rate limiter raises it: sent back, to run later
            raise sidequest.OverLimit("beats", 30.0)


class UniqueBeat(sidequest.Job):
    name = "tests.UniqueBeat"
    unique_for = 60

    def perform(self) -> None:
        pass


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    periodic_jobs.clear()
    yield
    periodic_jobs.clear()


def pushed(r: redis.Redis, queue: str = QUEUE) -> list[dict[str, Any]]:
    """The queue's jobs, oldest first."""
    return [json.loads(raw) for raw in reversed(r.lrange(keys.queue(queue), 0, -1))]


def test_every_second_ticks_are_pushed_once_each_as_normal_jobs(r: redis.Redis) -> None:
    sidequest.periodic(Beat, every=1, args=["x"], name="beat", queue=QUEUE)
    # Two pollers in one process race for every tick just as two processes do.
    with running_worker(), running_worker():
        wait_for(lambda: len(pushed(r)) >= 4, timeout=15, what="4 ticks")
    jobs = pushed(r)
    ticks = [job["periodic_tick"] for job in jobs]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks  # none doubled/skipped
    job = jobs[0]
    assert job["class"] == "tests.Beat" and job["args"] == ["x"] and job["queue"] == QUEUE
    assert job["periodic"] == "beat" and job["retry"] is True and len(job["jid"]) == 24
    assert isinstance(job["created_at"], float) and job["enqueued_at"] == job["created_at"]
    assert r.sismember(keys.QUEUES, QUEUE)
    state = r.hgetall(keys.periodic_state("beat"))
    assert state["jid"] == jobs[-1]["jid"] and int(state["last_tick"]) == ticks[-1]
    assert r.get(keys.periodic_tick("beat", ticks[0])) == job["jid"]
    assert 0 < r.ttl(keys.periodic_tick("beat", ticks[0])) <= 2 * 60 + 60
    assert json.loads(r.hget(keys.PERIODIC, "beat")) == {
        "name": "beat", "class": "tests.Beat", "every": 1, "args": ["x"], "tz": None,
        "queue": QUEUE, "catch_up": False, "options": {"retry": True},
        "source": f"module {__name__}"}


def _long_gone(r: redis.Redis, name: str, seconds_ago: int) -> int:
    """Make Redis say the entry's last tick was long ago, as if no worker ran since."""
    now = int(r.time()[0])
    r.hset(keys.PERIODIC, name, "{}")
    r.hset(keys.periodic_state(name), "tick", now - seconds_ago)
    return now - seconds_ago


def test_a_unique_jobs_ticks_wait_for_its_last_run(r: redis.Redis,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # unique_for on a periodic job keeps runs from overlapping, as for a push from code:
    # no worker reads the queue here, so the first tick's job stays queued holding its lock.
    caplog.set_level(logging.INFO, logger="sidequest")
    sidequest.periodic(UniqueBeat, every=1, name="once", queue=QUEUE)

    def handled() -> int:
        return int(float(r.hget(keys.periodic_state("once"), "tick") or 0))

    with running_worker():
        wait_for(lambda: len(pushed(r)) == 1, timeout=10, what="the first tick")
        (first,) = pushed(r)
        wait_for(lambda: handled() >= first["periodic_tick"] + 2, timeout=10,
                 what="two more ticks handled")
        assert len(pushed(r)) == 1, "a tick pushed a duplicate while the lock was held"
        # Said once for the run that holds them back, not at every tick.
        assert caplog.text.count("periodic once: tick") == 1, caplog.text
        lock = keys.unique_lock(first["unique_digest"])
        assert r.get(lock) == first["jid"]
        r.delete(keys.queue(QUEUE), lock)  # the job ran: its lock is released
        wait_for(lambda: len(pushed(r)) == 1, timeout=10, what="a tick once it was free")
    (second,) = pushed(r)
    assert second["periodic_tick"] > first["periodic_tick"] + 1
    assert r.get(keys.unique_lock(second["unique_digest"])) == second["jid"]


def test_missed_ticks_are_skipped_without_catch_up(r: redis.Redis,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    sidequest.periodic(Beat, every=10, name="beat", queue=QUEUE)
    since = _long_gone(r, "beat", 3600)
    with caplog.at_level("INFO", logger="sidequest"), running_worker(periodic_grace=5.0):
        started = int(r.time()[0])
        wait_for(lambda: r.hget(keys.periodic_state("beat"), "jid"), timeout=20,
                 what="an on-time tick")
    ticks = [job["periodic_tick"] for job in pushed(r)]
    assert ticks and all(t > started - 5 for t in ticks), (since, started, ticks)
    (said,) = [m for m in caplog.messages if "were missed" in m]
    # The span skipped (an hour of 10 s ticks, less the 5 s grace), its last tick the last
    # one missed, not the grace's edge; and what the grace still pushes (0 or 1).
    found = re.search(r"(\d+) ticks, from (\S+ \S+) to (\S+ \S+), were missed", said)
    assert found and 355 <= int(found[1]) <= 361 and "skipped" in said, said
    assert int(found[3][-2:]) % 10 == 0, said  # a tick's second, on the 10 s grid
    assert re.search(r"[01] ticks? of the last 5 s \(periodic_grace\) still due", said), said


def test_catch_up_runs_missed_ticks_once(r: redis.Redis) -> None:
    sidequest.periodic(Beat, every=10, name="beat", queue=QUEUE, catch_up=True)
    since = _long_gone(r, "beat", 3600)
    first_missed = (since // 10 + 1) * 10
    with running_worker(periodic_grace=5.0), running_worker(periodic_grace=5.0):
        # The next on-time tick comes after both pollers had their turn at the catch-up.
        wait_for(lambda: len(pushed(r)) >= 2, timeout=20, what="catch-up and on-time ticks")
    jobs = pushed(r)
    assert jobs[0]["periodic_tick"] == first_missed  # the first missed tick, once
    assert [j["periodic_tick"] for j in jobs].count(first_missed) == 1
    assert all(j["periodic_tick"] > int(r.time()[0]) - 30 for j in jobs[1:])


def test_a_paused_entry_lets_ticks_pass_and_does_not_replay_them(r: redis.Redis) -> None:
    sidequest.periodic(Beat, every=1, name="beat", queue=QUEUE)
    with running_worker():
        wait_for(lambda: pushed(r), timeout=10, what="a first tick")
        r.hset(keys.periodic_state("beat"), "paused", "1")
        time.sleep(0.3)  # a push already in flight lands
        held = len(pushed(r))
        before = int(r.hget(keys.periodic_state("beat"), "tick"))
        wait_for(lambda: int(r.hget(keys.periodic_state("beat"), "tick")) >= before + 2,
                 timeout=10, what="paused ticks to pass")
        assert len(pushed(r)) == held
        r.hdel(keys.periodic_state("beat"), "paused")
        resumed = int(r.time()[0])
        wait_for(lambda: len(pushed(r)) > held, timeout=10, what="a tick after resuming")
    assert all(j["periodic_tick"] >= resumed - 1 for j in pushed(r)[held:])


def test_a_start_removes_entries_it_no_longer_defines(r: redis.Redis) -> None:
    r.hset(keys.PERIODIC, "retired", json.dumps({"name": "retired", "every": 5}))
    r.hset(keys.periodic_state("retired"), "tick", 1)
    sidequest.periodic(Beat, every=3600, name="kept", queue=QUEUE)
    with running_worker():
        wait_for(lambda: not r.hexists(keys.PERIODIC, "retired"), what="removal")
    assert r.hkeys(keys.PERIODIC) == ["kept"]
    assert not r.exists(keys.periodic_state("retired"))
    assert r.hexists(keys.PERIODIC_REMOVED, "retired")


def test_a_start_removes_what_its_own_module_dropped_and_leaves_other_pools_alone(
        r: redis.Redis) -> None:
    """Two pools share a Redis, each with entries of its own modules: neither start removes
    the other's; a pool whose module dropped an entry removes that one."""
    here = f"module {__name__}"
    # "emptied": its module is loaded here and defines no entry any more
    for name, source in [("other-pool", "module billing.cron"), ("dropped", here),
                         ("emptied", "module json")]:
        r.hset(keys.PERIODIC, name, json.dumps({"name": name, "every": 5, "source": source}))
    sidequest.periodic(Beat, every=3600, name="kept", queue=QUEUE)
    assert periodic_jobs.entries()[0].source == here
    with running_worker():
        wait_for(lambda: not r.hexists(keys.PERIODIC, "dropped")
                 and not r.hexists(keys.PERIODIC, "emptied"), what="removals")
    assert sorted(r.hkeys(keys.PERIODIC)) == ["kept", "other-pool"]
    assert json.loads(r.hget(keys.PERIODIC, "kept"))["source"] == here


def test_a_process_without_entries_removes_nothing(r: redis.Redis) -> None:
    r.hset(keys.PERIODIC, "other-app", json.dumps({"name": "other-app", "every": 5}))
    with running_worker():
        time.sleep(0.5)
    assert r.hexists(keys.PERIODIC, "other-app")


def test_a_removed_entry_stops_being_pushed_by_an_older_process(r: redis.Redis) -> None:
    sidequest.periodic(Beat, every=1, name="beat", queue=QUEUE)
    with running_worker() as worker:
        wait_for(lambda: pushed(r), timeout=10, what="a first tick")
        # A newer process started without the entry: it removed it and left a tombstone.
        remove(r, "beat", int(time.time()))
        wait_for(lambda: "beat" in worker.periodic._gone, timeout=10, what="the poller to stop")
        count = len(pushed(r))
        time.sleep(1.5)
        assert len(pushed(r)) == count
        assert not r.hexists(keys.PERIODIC, "beat")
        # A process started later defines it again: the last to start decides.
        from sidequest import connection
        register(connection.client(), periodic_jobs.entries()[0], int(r.time()[0]))
        wait_for(lambda: len(pushed(r)) > count, timeout=10, what="pushes to resume")
    assert not worker.periodic._gone


def test_a_different_definition_is_logged_and_replaced(r: redis.Redis,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    r.hset(keys.PERIODIC, "beat", json.dumps({"name": "beat", "every": 99}))
    sidequest.periodic(Beat, every=3600, name="beat", queue=QUEUE)
    with running_worker():
        wait_for(lambda: b'"every":3600' in r.hget(keys.PERIODIC, "beat").encode(),
                 what="the definition written")
    assert "periodic beat differs from its stored definition" in caplog.text


def test_outcome_of_the_last_run(r: redis.Redis) -> None:
    sidequest.periodic(Beat, every=1, name="ok", queue=QUEUE)
    sidequest.periodic(Beat, every=1, args=["fail"], name="bad", queue=QUEUE)
    with running_worker(queues=((QUEUE, 0),)):
        for name, outcome in (("ok", "succeeded"), ("bad", "failed")):
            wait_for(lambda n=name: r.hget(keys.periodic_state(n), "outcome"), timeout=10,
                     what=f"{name}'s outcome")
            state = r.hgetall(keys.periodic_state(name))
            assert state["outcome"] == outcome, state


def test_a_worker_without_entries_records_a_tick_jobs_outcome(r: redis.Redis) -> None:
    # Its pool defines no periodic entry, but a tick's job landed in a queue it serves: the
    # Periodic page said "pending" for good.
    register(connection.client(), periodic_jobs.make_entry(
        Beat.wire_name(), every=3600, name="elsewhere", queue=QUEUE), int(r.time()[0]))
    with running_worker(queues=((QUEUE, 0),)) as worker:
        assert not worker.periodic.entries
        PeriodicSet().enqueue_now("elsewhere")
        wait_for(lambda: r.hget(keys.periodic_state("elsewhere"), "outcome"), timeout=10,
                 what="the outcome")
    assert r.hget(keys.periodic_state("elsewhere"), "outcome") == "succeeded"


def test_a_run_a_full_limiter_sent_back_is_no_outcome(r: redis.Redis) -> None:
    sidequest.periodic(Beat, every=1, args=["full"], name="full", queue=QUEUE)
    sidequest.periodic(Beat, every=1, name="ok", queue=QUEUE)
    with running_worker(queues=((QUEUE, 0),)):
        wait_for(lambda: r.zcard("schedule") >= 1, timeout=10, what="a try sent back")
        wait_for(lambda: r.hget(keys.periodic_state("ok"), "outcome"), timeout=10,
                 what="the other entry's outcome")
    assert r.hget(keys.periodic_state("full"), "outcome") is None


def test_definitions_lost_with_redis_data_are_written_again(r: redis.Redis) -> None:
    sidequest.periodic(Beat, every=1, name="beat", queue=QUEUE)
    with running_worker():
        wait_for(lambda: pushed(r), timeout=10, what="a first tick")
        r.flushall()
        lost_at = int(r.time()[0])
        wait_for(lambda: r.hexists(keys.PERIODIC, "beat") and pushed(r), timeout=15,
                 what="the entry written again and pushing")
    assert all(j["periodic_tick"] >= lost_at - 1 for j in pushed(r))


def test_ticks_missed_while_redis_was_away_are_pushed_by_a_process_that_pushed_none(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    # Redis restarted empty. The process first to notice may be one that lost every race
    # for the ticks before (another pushed them): it still knows they were handled, and the
    # ticks of the outage are pushed from there, not skipped from "now".
    from sidequest import connection
    from sidequest.config import build
    from sidequest.worker.periodic import PeriodicPoller

    entry = sidequest.periodic(Beat, every=1, name="beat", queue=QUEUE)
    base = int(r.time()[0])
    register(r, entry, base)
    winner, loser = (PeriodicPoller(build(), connection.new_client(), threading.Event(), [entry])
                     for _ in range(2))

    def clock(poller: PeriodicPoller, at: float) -> None:
        monkeypatch.setattr(poller.client, "time", lambda: (int(at), int(at % 1 * 1e6)))

    clock(winner, base + 1)
    winner.poll()
    clock(loser, base + 1.5)
    loser.poll()  # the tick is pushed already: nothing to offer
    assert [j["periodic_tick"] for j in pushed(r)] == [base + 1]
    r.flushall()  # Redis restarted empty
    clock(loser, base + 4.2)
    loser.poll()
    assert r.hexists(keys.PERIODIC, "beat"), "the definition was not written again"
    assert [j["periodic_tick"] for j in pushed(r)] == [base + 2, base + 3, base + 4]


def test_a_tick_offered_by_many_pollers_at_once_is_pushed_once(r: redis.Redis) -> None:
    import threading

    from sidequest import connection
    from sidequest.config import build
    from sidequest.worker.periodic import PeriodicPoller

    entry = sidequest.periodic(Beat, every=1, name="beat", queue=QUEUE)
    now = int(r.time()[0])
    register(connection.client(), entry, now)
    pollers = [PeriodicPoller(build(), connection.new_client(), threading.Event(), [entry])
               for _ in range(8)]
    barrier = threading.Barrier(len(pollers))

    def offer_all(poller: PeriodicPoller) -> None:
        barrier.wait()
        for tick in range(now + 1, now + 31):
            poller._offer(entry, tick, tick)

    threads = [threading.Thread(target=offer_all, args=(p,)) for p in pollers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(j["periodic_tick"] for j in pushed(r)) == list(range(now + 1, now + 31))
    # An old tick offered again (a process whose clock is behind) is refused too.
    pollers[0]._offer(entry, now + 5, now + 5)
    assert len(pushed(r)) == 30


class Tick(sidequest.Job):
    """Registered under this module's name: a periodic entry for ``Tock`` is a near miss."""

    def perform(self) -> None:
        pass


def test_a_worker_refuses_an_entry_naming_no_job_of_a_loaded_module(r: redis.Redis) -> None:
    """A slip in a class name (this module is loaded, and defines Tick, not Tock) stops the
    start with a did-you-mean, instead of ticks failing in the worker for weeks. A name in no
    loaded module (a Ruby class, another service's job) is still accepted."""
    from sidequest.errors import ConfigError

    sidequest.periodic(f"{__name__}.Tock", every=5, queue=QUEUE)
    sidequest.periodic("Reports::Daily", every=5, queue=QUEUE)
    refused = (rf"periodic entry '{__name__}.Tock': the module '{__name__}' is loaded but"
               rf" defines no job 'Tock' .*did you mean '{__name__}.Tick'\?")
    with pytest.raises(ConfigError, match=refused), running_worker():
        pass
    periodic_jobs.clear()
    sidequest.periodic("Reports::Daily", every=5, queue=QUEUE)
    with running_worker():
        wait_for(lambda: r.hexists(keys.PERIODIC, "Reports::Daily"), what="the entry")


class BareTick(sidequest.Job):  # a class name no other test module uses
    def perform(self) -> None:
        pass


def test_a_worker_refuses_an_entry_with_a_bare_class_name_on_a_queue_it_serves(
        r: redis.Redis) -> None:
    """class = "BareTick" for this module's BareTick: the worker started, and every tick failed in
    it saying the pusher had imported a module named 'BareTick'. On a queue it does not serve,
    the name may be a Ruby class's: accepted."""
    from sidequest.errors import ConfigError

    sidequest.periodic("BareTick", every=5, queue="default", name="bare")
    refused = (rf"periodic entry 'bare': no job is named 'BareTick', but '{__name__}.BareTick'"
               rf" is loaded here .*did you mean '{__name__}.BareTick'\?")
    with pytest.raises(ConfigError, match=refused), running_worker(queues=(("default", 0),)):
        pass
    periodic_jobs.clear()
    sidequest.periodic("BareTick", every=5, queue=QUEUE, name="bare")
    with running_worker(queues=(("default", 0),)):
        wait_for(lambda: r.hexists(keys.PERIODIC, "bare"), what="the entry")


def test_a_worker_refuses_an_entry_with_a_slip_in_its_module_name(r: redis.Redis) -> None:
    """The module part misspelt: no such module exists, and a loaded job has almost that
    name. Before, the worker started and every tick failed as an unknown class."""
    from sidequest.errors import ConfigError

    slip = __name__ + "s.Tick"  # test_periodics.Tick
    sidequest.periodic(slip, every=5, queue=QUEUE)
    refused = (rf"periodic entry '{slip}': no module '{slip[:-5]}' exists where this process"
               rf" looks, and '{__name__}.Tick' is a job loaded here; did you mean")
    with pytest.raises(ConfigError, match=refused), running_worker():
        pass


def test_an_entry_for_a_queue_this_worker_does_not_serve_is_pointed_out(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    sidequest.periodic(Beat, every=5, queue=QUEUE, name="unserved")
    with caplog.at_level("WARNING", logger="sidequest"), running_worker(queues=(("default", 0),)):
        pass
    assert [m for m in caplog.messages if "unserved" in m] == [
        f"periodic unserved pushes to queue '{QUEUE}', which this worker does not serve (-q):"
        " its jobs wait there unless another worker does"]


def test_an_entry_whose_job_this_worker_cannot_run_on_a_queue_it_serves_is_pointed_out(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    sidequest.periodic("RubyNightlyCleanup", every=5, queue="default", name="ruby-cleanup")
    with caplog.at_level("WARNING", logger="sidequest"), running_worker(queues=(("default", 0),)):
        pass
    assert [m for m in caplog.messages if "ruby-cleanup" in m] == [
        "periodic ruby-cleanup pushes RubyNightlyCleanup to queue 'default', which this worker"
        " serves but whose job it does not load: each one it fetches fails and is retried."
        " Give the entry a queue only the process that runs RubyNightlyCleanup serves, or"
        " load its module here (-r)"]


def test_an_entry_for_a_queue_on_another_shard_is_not_pointed_out(
        two_shards: tuple[redis.Redis, redis.Redis], caplog: pytest.LogCaptureFixture) -> None:
    # A sharded command runs one process per shard: the default shard's process leaves the
    # "reports" entry to the process of shard "reports", which serves that queue.
    sidequest.periodic(Beat, every=5, queue="reports", name="elsewhere")
    sidequest.periodic(Beat, every=5, queue=QUEUE, name="unserved")
    with caplog.at_level("WARNING", logger="sidequest"), running_worker(queues=(("default", 0),)):
        pass
    warned = [m for m in caplog.messages if "does not serve" in m]
    assert len(warned) == 1 and warned[0].startswith("periodic unserved ")


class Holds(sidequest.Job):
    """Runs until released, so that a stop waits for it."""

    name = "tests.PeriodicHolds"
    started = threading.Event()
    release = threading.Event()

    def perform(self) -> None:
        Holds.started.set()
        Holds.release.wait(20)


def test_a_stopping_process_pushes_no_more_ticks(r: redis.Redis) -> None:
    """Stopping waits for running jobs, up to the timeout; meanwhile it pushes nothing, as a
    quieted process does (a live one, or the next to start, pushes those ticks)."""
    Holds.started.clear()
    Holds.release.clear()
    sidequest.periodic(Beat, every=1, name="beat", queue=QUEUE)
    with running_worker() as worker:
        Holds.perform_async()
        assert Holds.started.wait(10)
        wait_for(lambda: pushed(r), timeout=10, what="a first tick")
        stopping = threading.Thread(target=worker.stop)
        stopping.start()
        wait_for(worker.periodic.paused.is_set, what="the poller paused by the stop")
        assert worker.scheduler.paused.is_set() and stopping.is_alive()  # still waiting
        count = len(pushed(r))
        time.sleep(1.5)  # ticks fall due meanwhile, none is pushed
        assert len(pushed(r)) == count
        Holds.release.set()
        stopping.join(20)


def test_held_back_ticks_are_logged_once_per_run_whichever_process_pushed_it(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """Two processes' pollers share the ticks of a unique entry: each run that holds ticks
    back is logged once, also when the process that sees its held-back ticks did not push
    it (such a process stayed silent until it pushed a run itself)."""
    from sidequest import connection
    from sidequest.config import Config
    from sidequest.worker.periodic import PeriodicPoller

    sidequest.periodic(UniqueBeat, every=1, name="unique-beat", queue=QUEUE)
    (entry,) = periodic_jobs.entries()
    register(r, entry, 1000)
    first, second = (PeriodicPoller(Config(), connection.client(), threading.Event(), [entry])
                     for _ in range(2))
    with caplog.at_level("INFO", logger="sidequest"):
        first._offer(entry, 1001, 1001)  # run 1, pushed by the first process
        second._offer(entry, 1002, 1002)
        first._offer(entry, 1003, 1003)
        r.delete(keys.unique_lock(pushed(r)[0]["unique_digest"]))  # run 1 ends
        second._offer(entry, 1004, 1004)  # run 2, pushed by the second
        for tick in range(1005, 1010):  # every tick run 2 holds back lands on the first
            first._offer(entry, tick, tick)
    said = [m for m in caplog.messages if "skipped: the job is unique" in m]
    # Run 1: once by each process that met its held-back ticks; run 2: once.
    assert len(said) == 3, said
    assert len(pushed(r)) == 2
