"""Nothing is lost: jobs of dead processes are recovered by running ones, poison pills are
capped, and a Redis outage is survived."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from helpers import FAST, running_worker, wait_for
from redis_server import RedisServer
from sidequest import Job, RedisUnavailable, middleware

ROOT = Path(__file__).resolve().parents[2]
SEEN: list[str] = []
LOCK = threading.Lock()


class Tracked(Job):
    def perform(self, tag: str) -> None:
        with LOCK:
            SEEN.append(tag)


@pytest.fixture(autouse=True)
def _clean() -> None:
    with LOCK:
        SEEN.clear()


def seen() -> list[str]:
    with LOCK:
        return list(SEEN)


def orphan(r: redis.Redis, owner: str, tags: list[str]) -> list[str]:
    """Make it look as if process ``owner`` died holding these jobs: no lease, list kept."""
    jids = []
    for tag in tags:
        jid = os.urandom(12).hex()
        payload = {"class": Tracked.wire_name(), "args": [tag], "jid": jid, "queue": "default",
                   "retry": True, "created_at": time.time()}
        r.lpush(f"sq:inprogress:{owner}", json.dumps(payload))
        jids.append(jid)
    r.sadd("sq:processes", owner)
    return jids


def test_running_worker_recovers_a_dead_process_jobs(r: redis.Redis,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    jids = orphan(r, "ghost:1:abc", ["a", "b", "c"])
    with caplog.at_level("WARNING", logger="sidequest"), running_worker():
        wait_for(lambda: sorted(seen()) == ["a", "b", "c"], what="recovered jobs to run")
    assert r.exists("sq:inprogress:ghost:1:abc") == 0
    assert not r.sismember("sq:processes", "ghost:1:abc")
    # The jobs are named: one of them was running when the process died, perhaps its cause.
    (said,) = [m for m in caplog.messages if "of dead process ghost:1:abc" in m]
    assert all(f"{Tracked.wire_name()} jid={jid}" in said for jid in jids), said


def test_live_process_is_not_reaped(r: redis.Redis) -> None:
    orphan(r, "alive:1:abc", ["x"])
    r.set("sq:lease:alive:1:abc", "1", px=60_000)
    with running_worker() as worker:
        Tracked.perform_async("marker")
        wait_for(lambda: "marker" in seen(), what="marker job")
        worker.reaper.reap()
    assert seen() == ["marker"] and r.llen("sq:inprogress:alive:1:abc") == 1


def test_poison_pill_goes_dead_after_max_deaths(r: redis.Redis) -> None:
    (jid,) = orphan(r, "ghost:2:abc", ["pill"])
    r.set(f"sq:deaths:{jid}", 2)  # two earlier deaths; this is the third
    with running_worker(max_deaths=3):
        (member,) = wait_for(lambda: r.zrange("dead", 0, -1), what="dead entry")
    dead = json.loads(member)
    assert dead["jid"] == jid and dead["error_class"] == "Sidequest::JobKilled"
    assert "died 3 times" in dead["error_message"] and seen() == []
    assert r.llen("sq:poison") == 0


def test_worker_survives_redis_outage(redis_server: RedisServer, r: redis.Redis) -> None:
    with running_worker() as worker:
        Tracked.perform_async("before")
        wait_for(lambda: "before" in seen(), what="first job")
        redis_server.stop()
        with pytest.raises(RedisUnavailable):
            Tracked.perform_async("during")
        time.sleep(0.5)  # let every thread hit the outage (this is the fault, not a sync)
        redis_server.start()
        Tracked.perform_async("after")
        wait_for(lambda: "after" in seen(), timeout=15, what="job after Redis came back")
        assert all(t.is_alive() for t in worker.manager._threads)
    assert seen() == ["before", "after"]


def _worker(redis_url: str, ledger_url: str, config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "LEDGER_URL": ledger_url,
           "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "sidequest", "-r", "apps.ledger_jobs", "-C", str(config),
         "--log-level", "WARNING", *args],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _identity(r: redis.Redis, pid: int) -> str:
    for member in r.smembers("processes"):
        if f":{pid}:" in member:
            return str(member)
    return ""


def test_sigkilled_worker_loses_nothing(redis_server: RedisServer, r: redis.Redis,
                                       tmp_path: Path) -> None:
    config = tmp_path / "worker.toml"
    config.write_text("\n".join(f"{k} = {v}" for k, v in FAST.items()) + "\n")
    ledger_url = redis_server.url[:-1] + "1"
    ledger = redis.Redis.from_url(ledger_url, decode_responses=True)
    ledger.flushdb()
    from apps.ledger_jobs import Slow

    victim = _worker(redis_server.url, ledger_url, config, "-c", "50")
    rescuer = None
    try:
        wait_for(lambda: _identity(r, victim.pid), what="victim heartbeat")
        jids = Slow.perform_bulk([[1.5]] * 50)
        victim_id = _identity(r, victim.pid)
        wait_for(lambda: r.llen(f"sq:inprogress:{victim_id}") == 50, what="50 jobs in flight")
        # Killed at once, before any of its 1.5 s jobs can finish: a job that finished and
        # was not yet acknowledged would rightly run again, which is not what this checks.
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(5)
        assert ledger.hlen("done") == 0, "the victim finished jobs before it was killed"
        rescuer = _worker(redis_server.url, ledger_url, config, "-c", "10")
        wait_for(lambda: _identity(r, rescuer.pid), what="rescuer heartbeat")
        started = time.monotonic() - killed_at  # the rescuer's own start-up
        wait_for(lambda: ledger.hlen("done") == 50, timeout=30, what="all 50 jobs done")
        recovery = time.monotonic() - killed_at
    finally:
        for proc in (victim, rescuer):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    done = ledger.hgetall("done")
    assert set(done) == set(jids) and all(v == "1" for v in done.values())
    # Each job ran at most twice: once in the victim (killed), once in the rescuer.
    assert all(int(v) <= 2 for v in ledger.hgetall("started").values())
    # The rescuer's start, lease TTL + reaper interval, 5 batches of 1.5 s jobs on 10
    # threads, plus slack.
    assert recovery < started + FAST["lease_ttl"] + FAST["reaper_interval"] + 5 * 1.5 + 3
    assert r.keys("sq:inprogress:*") == []


ACTIVE = [0]  # Overlap jobs running right now, for the suspect to look at


class Overlap(Job):
    def perform(self, tag: str) -> None:
        with LOCK:
            ACTIVE[0] += 1
        time.sleep(0.01)  # the job's work: long enough to overlap with its neighbours
        with LOCK:
            ACTIVE[0] -= 1
            SEEN.append(tag)


class Alone(Job):
    """Records how many other jobs were running in its process when it ran."""

    def perform(self, tag: str) -> None:
        with LOCK:
            SEEN.append(f"{tag}:{ACTIVE[0]}")


def test_suspect_runs_alone_and_is_cleared(r: redis.Redis) -> None:
    (jid,) = orphan(r, "ghost:3:abc", ["placeholder"])
    # Re-write the orphan as an Alone job that already died once: this reap makes it 2.
    payload = {"class": Alone.wire_name(), "args": ["suspect"], "jid": jid, "queue": "default",
               "retry": True}
    r.delete("sq:inprogress:ghost:3:abc")
    r.lpush("sq:inprogress:ghost:3:abc", json.dumps(payload))
    r.set(f"sq:deaths:{jid}", 1)
    Overlap.perform_bulk([[f"n{i}"] for i in range(50)])
    with running_worker(concurrency=4, max_deaths=3) as worker:
        wait_for(lambda: any(s.startswith("suspect:") for s in seen()), what="suspect ran")
        wait_for(lambda: len(seen()) == 51, what="all jobs")
        wait_for(lambda: not worker.manager.isolating.is_set(), what="isolation over")
        Tracked.perform_async("after")
        wait_for(lambda: "after" in seen(), what="normal fetching resumed")
    assert "suspect:0" in seen()  # no other job was running in its process
    assert r.exists(f"sq:deaths:{jid}") == 0 and r.llen("sq:quarantine") == 0
    assert r.exists("sq:quarantine:lock") == 0


def test_a_suspect_of_another_pool_is_left_for_it(r: redis.Redis) -> None:
    """A worker that serves other queues leaves a quarantined job alone: before, it took it
    and failed it as unknown, using one of its retries. One of a queue it serves it takes,
    whatever the class, as a fetch from that queue would: a class renamed by a deploy is
    failed as unknown, into the retry set, not left unseen in the quarantine for good."""
    renamed = json.dumps({"class": "app.renamed.Heavy", "args": [], "jid": "q" * 24,
                          "queue": "default", "retry": True})
    unserved = [json.dumps({"class": Alone.wire_name(), "args": [f"x{i}"], "jid": f"u{i:023}",
                            "queue": "reports", "retry": True}) for i in range(250)]
    # Taken from the right: the other pool's jobs come first, more than one page of them.
    r.lpush("sq:quarantine", *unserved, renamed)
    r.set(f"sq:deaths:{'q' * 24}", 2)
    with running_worker(max_deaths=3) as worker:
        (entry,) = wait_for(lambda: r.zrange("retry", 0, -1), what="the renamed job failed")
        wait_for(lambda: not worker.manager.isolating.is_set(), what="isolation over")
        Tracked.perform_async("still fetching")
        wait_for(lambda: "still fetching" in seen(), what="a job of its own queue")
        assert not worker.manager.fetcher.has_suspects()
        assert worker.manager.fetcher.take_suspect() is None  # each looked at, each left
    assert json.loads(entry)["error_class"] == "sidequest.errors.UnknownJobError"
    # It did not run here: its deaths still count, for wherever its class is loaded.
    assert r.get(f"sq:deaths:{'q' * 24}") == "2"
    assert sorted(r.lrange("sq:quarantine", 0, -1)) == sorted(unserved)
    assert r.llen(f"sq:inprogress:{worker.identity}") == 0


class Holding(Job):
    """Runs until RELEASE is set: the process is not alone, so it waits to run suspects."""

    def perform(self) -> None:
        RELEASE.wait(10)


RELEASE = threading.Event()


def test_a_quiet_process_gives_the_quarantine_to_another(r: redis.Redis) -> None:
    """Quieted while it waited to run suspects, a process kept their lock for as long as it
    stayed quiet, and no other process could run them."""
    RELEASE.clear()
    suspect = json.dumps({"class": Tracked.wire_name(), "args": ["held"], "jid": "h" * 24,
                          "queue": "default", "retry": True})
    try:
        with running_worker(max_deaths=3) as worker:
            Holding.perform_async()
            wait_for(lambda: worker.manager.active and r.llen("queue:default") == 0,
                     what="the holding job fetched")
            r.lpush("sq:quarantine", suspect)
            wait_for(lambda: r.get("sq:quarantine:lock") == worker.identity,
                     what="the lock taken")
            worker.quiet()
            wait_for(lambda: r.exists("sq:quarantine:lock") == 0, what="the lock given up")
            assert not worker.manager.isolating.is_set()
            RELEASE.set()
    finally:
        RELEASE.set()
    assert r.lrange("sq:quarantine", 0, -1) == [suspect] and "held" not in seen()


class AsyncAlone(Job):
    async def perform(self, tag: str) -> None:
        await asyncio.sleep(0)
        with LOCK:
            SEEN.append(tag)


class _AsyncOnly:
    """A middleware with only the coroutine form (an application whose jobs are all async)."""

    def __init__(self) -> None:
        self.wrapped: list[str] = []

    async def acall(self, job: Any, payload: dict[str, Any], queue: str, call_next: Any) -> Any:
        self.wrapped.append(payload["args"][0])
        return await call_next()


def test_an_async_suspect_runs_through_a_middleware_that_has_only_acall(
        r: redis.Redis) -> None:
    """A suspect runs alone, on a thread: it went through the chain there and failed with
    "the first argument must be callable", using a retry, instead of running."""
    (jid,) = orphan(r, "ghost:5:abc", ["placeholder"])
    payload = {"class": AsyncAlone.wire_name(), "args": ["async suspect"], "jid": jid,
               "queue": "default", "retry": True}
    r.delete("sq:inprogress:ghost:5:abc")
    r.lpush("sq:inprogress:ghost:5:abc", json.dumps(payload))
    r.set(f"sq:deaths:{jid}", 1)
    watch = _AsyncOnly()
    middleware.server.add(watch)  # type: ignore[arg-type]
    try:
        with running_worker(max_deaths=3) as worker:
            wait_for(lambda: "async suspect" in seen(), what="the suspect ran")
            wait_for(lambda: not worker.manager.isolating.is_set(), what="isolation over")
    finally:
        middleware.server.remove(watch)  # type: ignore[arg-type]
    assert watch.wrapped == ["async suspect"]
    assert r.zcard("retry") == 0 and r.exists(f"sq:deaths:{jid}") == 0


def test_a_suspect_given_back_unstarted_goes_back_to_the_quarantine(r: redis.Redis) -> None:
    """Taken from the quarantine as a quiet came (or as the lock was given up), it went to
    its plain queue, where any process ran it beside others."""
    suspect = json.dumps({"class": Tracked.wire_name(), "args": ["s"], "jid": "s" * 24,
                          "queue": "default", "retry": True})
    with running_worker(max_deaths=3) as worker:
        worker.quiet()  # it runs no suspect itself meanwhile
        r.lpush("sq:quarantine", suspect)
        work = worker.manager.fetcher.take_suspect()
        assert work is not None and work.suspect
        assert worker.manager.inprogress.requeue([work])
        assert r.lrange("sq:quarantine", 0, -1) == [suspect]
        assert r.llen("queue:default") == 0
        assert r.llen(f"sq:inprogress:{worker.identity}") == 0


def test_a_look_for_suspects_is_bounded_and_goes_on_where_it_stopped(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of another pool's suspects cost each heartbeat a bounded read; the next
    look reads on, so one of this process's lying deep is found all the same."""
    from sidequest.worker import fetch

    monkeypatch.setattr(fetch, "SUSPECT_PAGES", 1)
    mine = json.dumps({"class": Tracked.wire_name(), "args": ["deep"], "jid": "d" * 24,
                       "queue": "default"})
    others = [json.dumps({"class": Tracked.wire_name(), "args": [n], "jid": f"o{n:023}",
                          "queue": "reports"}) for n in range(fetch.SUSPECT_PAGE)]
    with running_worker(max_deaths=3) as worker:
        worker.quiet()  # it looks only when told here
        r.lpush("sq:quarantine", *others, mine)  # a page of others at the end read first
        looks = [worker.manager.fetcher.has_suspects() for _ in range(3)]
    assert looks == [False, True, True]


def test_a_look_for_suspects_after_the_list_shrank_reads_from_its_end_at_once(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list shrank below the page the last look reached: an empty page sent the cursor
    back, but this look said no suspect, and the one waiting had to wait a heartbeat more."""
    from sidequest.worker import fetch

    monkeypatch.setattr(fetch, "SUSPECT_PAGES", 1)
    others = [json.dumps({"class": Tracked.wire_name(), "args": [n], "jid": f"o{n:023}",
                          "queue": "reports"}) for n in range(fetch.SUSPECT_PAGE + 1)]
    mine = json.dumps({"class": Tracked.wire_name(), "args": ["end"], "jid": "e" * 24,
                       "queue": "default"})
    with running_worker(max_deaths=3) as worker:
        worker.quiet()  # it looks only when told here
        r.lpush("sq:quarantine", *others)
        assert not worker.manager.fetcher.has_suspects()  # one page read: the next goes on
        r.delete("sq:quarantine")
        r.lpush("sq:quarantine", mine)  # one suspect, this process's, far below that page
        assert worker.manager.fetcher.has_suspects()
