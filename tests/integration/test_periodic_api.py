"""sidequest.api.PeriodicSet and `sidequest periodic`: what Redis holds about periodic
entries, read back with their next and last runs; pause, resume and enqueue now."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

import sidequest
from sidequest import keys, periodic_jobs
from sidequest.api import PeriodicSet
from sidequest.worker.periodic import register

QUEUE = "periodic-api"


class Nightly(sidequest.Job):
    name = "tests.Nightly"
    retry = 2

    def perform(self, days: int) -> None:
        pass


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    periodic_jobs.clear()
    yield
    periodic_jobs.clear()


@pytest.fixture
def entries(r: redis.Redis) -> int:
    """Two entries as a worker writes them at start; returns Redis's now."""
    now = int(r.time()[0])
    nightly = periodic_jobs.make_entry(Nightly, cron="30 2 * * *", args=[7],
                                       tz="Europe/Paris", name="nightly", queue=QUEUE)
    ping = periodic_jobs.make_entry("RubyPing", every=30, name="ping")
    from sidequest import connection

    for entry in (nightly, ping):
        register(connection.client(), entry, now)
    return now


def test_entries_with_next_and_last_runs(r: redis.Redis, entries: int) -> None:
    r.hset(keys.periodic_state("ping"), mapping={
        "tick": entries, "last_tick": entries, "jid": "a" * 24, "at": entries + 0.25,
        "outcome": "failed"})
    nightly, ping = PeriodicSet().entries()
    assert (nightly.name, nightly.schedule, nightly.tz, nightly.job_class) == (
        "nightly", "30 2 * * *", "Europe/Paris", "tests.Nightly")
    assert nightly.description == "At 02:30 every day"
    assert nightly.next_run is not None and 0 < nightly.next_run - entries <= 86400 + 3600
    assert nightly.last_jid == "" and nightly.last_run is None and not nightly.paused
    assert (ping.schedule, ping.description, ping.tz) == ("every 30s", "Every 30 seconds", "UTC")
    assert ping.next_run == (entries // 30 + 1) * 30
    assert (ping.last_jid, ping.last_run, ping.outcome) == ("a" * 24, entries + 0.25, "failed")


def test_pause_resume_and_enqueue_now(r: redis.Redis, entries: int) -> None:
    periodic = PeriodicSet()
    assert periodic.pause("nightly") and periodic.find("nightly").paused  # type: ignore[union-attr]
    assert periodic.resume("nightly") and not periodic.find("nightly").paused  # type: ignore[union-attr]
    assert not periodic.pause("nope") and periodic.enqueue_now("nope") is None
    jid = periodic.enqueue_now("nightly")
    job = json.loads(r.lindex(keys.queue(QUEUE), 0))
    assert job["jid"] == jid and job["args"] == [7] and job["class"] == "tests.Nightly"
    assert job["retry"] == 2 and job["periodic"] == "nightly"
    assert periodic.find("nightly").last_jid == jid  # type: ignore[union-attr]


def test_enqueue_now_keeps_the_outcome_of_a_job_that_ended_at_once(
        r: redis.Redis, entries: int) -> None:
    """A worker may run the pushed job, and record its outcome, before enqueue_now returns:
    the entry named the jid only after the push, so the outcome was not recorded (another
    jid was there) or was cleared after it."""
    from sidequest import middleware
    from sidequest.worker import periodic as worker_periodic

    def run_at_once(job: dict[str, object], queue: str, call_next: Any) -> object:
        pushed = call_next()
        worker_periodic._note("nightly", job, "succeeded")  # as a fast worker would
        return pushed

    middleware.client.add(run_at_once)
    try:
        jid = PeriodicSet().enqueue_now("nightly")
    finally:
        middleware.client.remove(run_at_once)
    entry = PeriodicSet().find("nightly")
    assert entry is not None and (entry.last_jid, entry.outcome) == (jid, "succeeded")


def test_an_enqueue_now_that_pushed_nothing_leaves_the_last_run_as_it_was(
        r: redis.Redis, entries: int) -> None:
    from sidequest import middleware
    from sidequest.errors import SidequestError

    state = keys.periodic_state("nightly")
    r.hset(state, mapping={"jid": "b" * 24, "at": "1700000000.5", "outcome": "succeeded",
                           "outcome_at": "1700000001.5", "paused": "1"})
    before = r.hgetall(state)

    def drop(job: dict[str, object], queue: str, call_next: Any) -> object:
        return None

    def fail(job: dict[str, object], queue: str, call_next: Any) -> object:
        raise RuntimeError("a middleware's own bug")

    for middle, raised in ((drop, SidequestError), (fail, RuntimeError)):
        middleware.client.add(middle)
        try:
            with pytest.raises(raised):
                PeriodicSet().enqueue_now("nightly")
        finally:
            middleware.client.remove(middle)
        assert r.hgetall(state) == before


def test_enqueue_now_where_the_class_is_not_loaded_keeps_its_options(
        r: redis.Redis, entries: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The dashboard runs without the app (sidequest web): the options come from the stored
    # definition, so the job retries, times out and stays unique as a tick's would.
    from sidequest import registry

    monkeypatch.setattr(registry, "find", lambda name: None)
    monkeypatch.setattr(registry, "lookup", lambda name: (_ for _ in ()).throw(
        sidequest.errors.UnknownJobError(name)))
    jid = PeriodicSet().enqueue_now("nightly")
    job = json.loads(r.lindex(keys.queue(QUEUE), 0))
    assert job["jid"] == jid and job["class"] == "tests.Nightly" and job["retry"] == 2
    PeriodicSet().enqueue_now("ping")  # a class no process here defines: Sidekiq's default
    assert json.loads(r.lindex(keys.queue("default"), 0))["retry"] is True


def test_unreadable_definitions_show_as_unknown(r: redis.Redis) -> None:
    r.hset(keys.PERIODIC, mapping={"junk": "not json", "odd": json.dumps({"cron": "nope"})})
    r.hset(keys.periodic_state("odd"), mapping={"at": "1e300", "tick": "x"})
    junk, odd = PeriodicSet().entries()
    assert (junk.schedule, junk.next_run, junk.description) == ("?", None, "")
    assert (odd.schedule, odd.next_run, odd.last_run) == ("nope", None, None)


def run_command(redis_url: str) -> str:
    out = subprocess.run([sys.executable, "-m", "sidequest", "periodic", "--redis-url",
                          redis_url], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def test_the_periodic_command(r: redis.Redis, redis_url: str, entries: int) -> None:
    r.hset(keys.periodic_state("ping"), mapping={"jid": "b" * 24, "at": entries,
                                                 "outcome": "succeeded"})
    PeriodicSet().pause("nightly")
    lines = run_command(redis_url).splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "TZ", "NEXT", "RUN", "LAST", "RUN", "(JID,",
                                "OUTCOME)", "DEFINED", "IN"]
    assert lines[1].split()[:8] == ["nightly", "30", "2", "*", "*", "*", "Europe/Paris",
                                    "paused"]
    assert lines[2].split()[:4] == ["ping", "every", "30s", "UTC"]
    assert lines[2].split()[-3:] == ["b" * 24, "succeeded", "-"]


def test_the_periodic_command_without_entries(redis_url: str) -> None:
    assert "No periodic entries" in run_command(redis_url)


def test_the_listing_says_where_each_entry_is_defined(r: redis.Redis) -> None:
    # An entry left by a module no worker loads any more is told apart by its source.
    from sidequest import connection
    from sidequest.monitor import render_periodic

    defined = replace(periodic_jobs.make_entry(Nightly, every=60, args=[1], name="sourced"),
                      source="module app.cron")
    register(connection.client(), defined, int(r.time()[0]))
    unsourced = periodic_jobs.make_entry(Nightly, every=60, args=[1], name="bare")
    register(connection.client(), unsourced, int(r.time()[0]))
    assert PeriodicSet().find("sourced").source == "module app.cron"  # type: ignore[union-attr]
    header, *rows = [line for line in render_periodic() if line.strip()]
    assert header.split()[-2:] == ["DEFINED", "IN"]
    (sourced,) = [row for row in rows if row.startswith("sourced")]
    (bare,) = [row for row in rows if row.startswith("bare")]
    assert sourced.endswith("module app.cron") and bare.endswith("-")


def test_a_tick_during_an_enqueue_now_that_pushed_nothing_stands(
        r: redis.Redis, entries: int) -> None:
    """A worker's tick lands at a random moment during each of many refused "Enqueue now"s:
    the last run put back is never the one from before the tick (the read of the last run
    and the write of the push's jid were two round trips: a tick between them was undone)."""
    import random
    import threading

    from sidequest import middleware
    from sidequest.errors import SidequestError

    state = keys.periodic_state("nightly")
    where = r.connection_pool.connection_kwargs
    ticker = redis.Redis(host=where["host"], port=where["port"], db=where.get("db", 0))
    wrong: list[tuple[Any, str]] = []

    def drop(job: dict[str, object], queue: str, call_next: Any) -> object:
        return None

    middleware.client.add(drop)
    try:
        for n in range(200):
            def tick(jid: str = f"t{n}", after: float = random.uniform(0, 0.001)) -> None:
                time.sleep(after)  # anywhere within the enqueue's few round trips
                ticker.hset(state, mapping={"jid": jid, "at": "1.0"})

            thread = threading.Thread(target=tick)
            thread.start()
            with pytest.raises(SidequestError):
                PeriodicSet().enqueue_now("nightly")
            thread.join()
            jid = r.hget(state, "jid")
            if jid not in (f"t{n}", f"t{n}".encode()):
                wrong.append((jid, f"t{n}"))
    finally:
        middleware.client.remove(drop)
    assert not wrong, wrong[:5]
