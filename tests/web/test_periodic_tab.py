"""The Periodic tab against real Redis data: entries with their schedule in words and as
written, time zone, next and last run with jid and outcome; pause, resume, enqueue now and
remove, each a POST behind the same CSRF check as every other action; hostile names printed
inert."""

from __future__ import annotations

import json

import pytest
import redis

from sidequest import connection, keys, monitor, periodic_jobs
from sidequest.worker.periodic import register
from web_helpers import HOSTILE, SAME_ORIGIN, Client, flash, process

pytestmark = pytest.mark.redis


def define(r: redis.Redis) -> int:
    now = int(r.time()[0])
    for entry in (
        periodic_jobs.make_entry("app.jobs.NightlyReport", cron="30 2 * * *", args=[7],
                                 tz="Europe/Paris", name="nightly-report", queue="reports"),
        periodic_jobs.make_entry("app.jobs.Ping", every=30, name="ping"),
    ):
        register(connection.client(), entry, now)
    r.hset(keys.periodic_state("ping"), mapping={"jid": "a" * 24, "at": now - 12,
                                                 "last_tick": now - 12, "outcome": "failed"})
    return now


def test_the_tab_lists_entries(client: Client, r: redis.Redis) -> None:
    define(r)
    page = client.get("/periodic").text
    assert 'href="/periodic" class="active"' in page
    assert "nightly-report" in page and "At 02:30 every day" in page and "30 2 * * *" in page
    assert "Europe/Paris" in page and "app.jobs.NightlyReport" in page and "[7]" in page
    assert "Every 30 seconds" in page and "every 30s" in page and "UTC" in page
    assert "a" * 24 in page and "failed" in page and "never" in page
    assert page.count(">Pause<") == 2 and page.count(">Enqueue now<") == 2


def test_an_entry_no_running_worker_pushes_is_overdue(client: Client, r: redis.Redis) -> None:
    now = define(r)
    assert "overdue" not in client.get("/periodic").text
    # The last tick any process handled was 10 minutes ago: every-30s ticks went unpushed.
    r.hset(keys.periodic_state("ping"), "tick", now - 600)
    page = client.get("/periodic").text
    row = page[page.index('data-name="ping"'):]
    row = row[:row.index("</tr>")]
    assert ">overdue<" in row and "since 9 min ago" in row, row
    assert "start a worker that defines it, or Remove it" in row  # no source was written
    other = page[page.index('data-name="nightly-report"'):]
    assert ">overdue<" not in other[:other.index("</tr>")]  # its next tick is to come
    assert "OVERDUE since" in "\n".join(monitor.render_periodic())
    # A live process that defines it (its record says so) only skipped the ticks of an
    # outage longer than its grace: not overdue.
    process(r, "w1:1:aaaaaaaaaaaa", periodic=["ping"])
    assert ">overdue<" not in client.get("/periodic").text


def test_pause_resume_and_enqueue_now(client: Client, r: redis.Redis) -> None:
    define(r)
    answer = client.submit("/periodic", {"action": "pause", "name": "ping"})
    assert answer.status_code == 303 and answer.headers["location"] == "/periodic"
    assert r.hget(keys.periodic_state("ping"), "paused") == "1"
    page = client.get("/periodic").text
    assert "Paused ping." in flash(page) and ">Resume<" in page
    client.submit("/periodic", {"action": "resume", "name": "ping"})
    assert not r.hexists(keys.periodic_state("ping"), "paused")
    client.submit("/periodic", {"action": "enqueue", "name": "nightly-report"})
    job = json.loads(r.lindex("queue:reports", 0))
    assert job["class"] == "app.jobs.NightlyReport" and job["args"] == [7]
    assert job["periodic"] == "nightly-report"
    page = client.get("/periodic").text
    assert f"Enqueued nightly-report now ({job['jid']})." in flash(page)
    assert r.hget(keys.periodic_state("nightly-report"), "jid") == job["jid"]
    client.submit("/periodic", {"action": "pause", "name": "gone"})
    assert "No periodic entry gone." in flash(client.get("/periodic").text)
    assert client.submit("/periodic", {"action": "explode", "name": "ping"}).status_code == 400


def test_remove_an_entry_no_code_defines_any_more(client: Client, r: redis.Redis) -> None:
    define(r)
    assert client.get("/periodic").text.count(">Remove<") == 2
    client.submit("/periodic", {"action": "remove", "name": "ping"})
    page = client.get("/periodic").text
    assert "Removed ping: running workers stop pushing it" in flash(page)
    assert 'data-name="ping"' not in page and 'data-name="nightly-report"' in page
    assert not r.hexists(keys.PERIODIC, "ping") and not r.exists(keys.periodic_state("ping"))
    # The mark by which a running process that still defines it stops pushing it.
    assert r.hexists(keys.PERIODIC_REMOVED, "ping")
    client.submit("/periodic", {"action": "remove", "name": "ping"})
    assert "No periodic entry ping." in flash(client.get("/periodic").text)


def test_enqueue_now_of_a_unique_job_already_queued_says_so(client: Client,
                                                             r: redis.Redis) -> None:
    # The class is not loaded here: the options a worker stored make the push unique, and
    # a refused duplicate is not a missing entry.
    r.hset(keys.PERIODIC, "sync", json.dumps({
        "name": "sync", "class": "app.jobs.Sync", "every": 60, "args": [3], "tz": None,
        "queue": "default", "catch_up": False,
        "options": {"retry": 2, "unique_for": 600, "enqueue_on_commit": True}}))
    client.submit("/periodic", {"action": "enqueue", "name": "sync"})
    (raw,) = r.lrange("queue:default", 0, -1)
    job = json.loads(raw)
    assert job["retry"] == 2 and job["unique_for"] == 600 and "enqueue_on_commit" not in job
    client.submit("/periodic", {"action": "enqueue", "name": "sync"})
    said = flash(client.get("/periodic").text)
    assert "sync was not enqueued: its job is unique" in said, said
    assert r.llen("queue:default") == 1


@pytest.mark.parametrize("token", [None, "forged"])
def test_actions_need_the_csrf_token(client: Client, r: redis.Redis, token: str | None) -> None:
    define(r)
    data = {"action": "enqueue", "name": "ping"}
    if token is not None:
        data["csrf"] = token
    answer = client.post("/periodic", data=data, headers=SAME_ORIGIN, follow_redirects=False)
    assert answer.status_code == 403
    assert r.llen("queue:default") == 0


def test_hostile_definitions_are_printed_inert(client: Client, r: redis.Redis) -> None:
    r.hset(keys.PERIODIC, HOSTILE, json.dumps({"class": HOSTILE, "cron": HOSTILE,
                                               "tz": HOSTILE, "args": [HOSTILE]}))
    page = client.get("/periodic").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    assert "unreadable schedule" in page


def test_malformed_definitions_read_as_unreadable(client: Client, r: redis.Redis) -> None:
    # Written by hand or by another tool: one odd entry must not take the tab down.
    r.hset(keys.PERIODIC, mapping={"not-json": "notjson", "no-args": json.dumps(
        {"class": "X", "every": 5}), "a-list": "[1]", "odd-args": json.dumps(
        {"class": "X", "every": 5, "args": "text", "every_s": None})})
    answer = client.get("/periodic")
    assert answer.status_code == 200
    for name in ("not-json", "no-args", "a-list", "odd-args"):
        assert f'data-name="{name}"' in answer.text
    assert answer.text.count("unreadable schedule") == 2


def test_no_entries(client: Client) -> None:
    assert "No periodic jobs." in client.get("/periodic").text
