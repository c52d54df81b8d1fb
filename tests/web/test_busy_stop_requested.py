"""After Stop (or Quiet) on the Busy tab, the process's row says it was asked, until the
process reads the request at its next heartbeat, instead of "running" with the buttons that
ask again. The request waits in the process's ``<identity>-signals`` list; once read, the
record says "quiet"."""

from __future__ import annotations

import html
import json
import re
import time

import pytest
import redis

from sidequest import monitor
from web_helpers import Client, flash, process
from web_helpers import job as job_payload

pytestmark = pytest.mark.redis

W1, W2 = "w1:1:aaaaaaaaaaaa", "w2:2:bbbbbbbbbbbb"


def row(page: str, identity: str) -> tuple[str, list[str]]:
    """A process row's state and the buttons it offers."""
    found = re.search(rf'<tr data-identity="{re.escape(identity)}">(.*?)</tr>', page, re.S)
    assert found, identity
    state = re.search(r'<td class="state"><span class="badge[^"]*"[^>]*>([^<]+)<',
                      found.group(1))
    assert state, found.group(1)
    return state.group(1), re.findall(r'<button type="submit"[^>]*>([^<]+)<', found.group(1))


def test_a_process_asked_to_stop_shows_it_until_it_reads_it(client: Client,
                                                            r: redis.Redis) -> None:
    process(r, W1)
    process(r, W2)
    assert row(client.get("/busy").text, W1) == ("running", ["Quiet", "Stop"])
    assert client.submit("/busy", {"action": "stop", "identity": W1}).status_code == 303
    page = client.get("/busy").text
    assert row(page, W1) == ("stop requested", [])
    assert row(page, W2) == ("running", ["Quiet", "Stop"])
    # The process reads it at its heartbeat, goes quiet and finishes its jobs.
    assert r.rpop(f"{W1}-signals") == "TERM"
    r.hset(W1, mapping={"quiet": "true", "sq_stopping": "true"})  # as a Sidequest worker does
    assert row(client.get("/busy").text, W1) == ("stopping", ["Stop"])
    r.hset(W1, "sq_stopping", "false")  # a quiet one (or Ruby's, which writes only quiet)
    assert row(client.get("/busy").text, W1) == ("quiet", ["Stop"])


def test_a_process_without_a_recent_heartbeat_is_not_responding(client: Client,
                                                                r: redis.Redis) -> None:
    # Killed with kill -9: listed as "running" with its busy threads until its entry expired.
    process(r, W1, work={"t1": job_payload("d" * 24)})
    process(r, W2, work={"t2": job_payload("e" * 24)})
    r.hset(W1, "beat", time.time() - 17)
    page = client.get("/busy").text
    assert row(page, W1)[0] == "not responding" and row(page, W2)[0] == "running"
    assert "No heartbeat for 17 s: killed or frozen" in page
    jobs = page[page.index('id="jobs"'):]
    dead_row = jobs[jobs.index("d" * 24):]
    assert ">process not responding<" in dead_row[:dead_row.index("</tr>")]
    live_row = jobs[jobs.index("e" * 24):]
    assert "not responding" not in live_row[:live_row.index("</tr>")]
    lines = "\n".join(monitor.render_status())
    assert "NOT RESPONDING (no heartbeat" in lines and lines.count("NOT RESPONDING") == 1
    # One that says it beats every 10 s is given three of them.
    process(r, W2, beat_every=10)
    r.hset(W2, "beat", time.time() - 25)
    assert row(client.get("/busy").text, W2)[0] == "running"
    r.hset(W2, "beat", time.time() - 31)
    assert row(client.get("/busy").text, W2)[0] == "not responding"


def test_a_process_asked_to_quiet_offers_only_stop(client: Client, r: redis.Redis) -> None:
    process(r, W1)
    client.submit("/busy", {"action": "quiet", "identity": W1})
    assert row(client.get("/busy").text, W1) == ("quiet requested", ["Stop"])
    client.submit("/busy", {"action": "stop"})  # Stop all: TERM behind the TSTP
    assert row(client.get("/busy").text, W1) == ("stop requested", [])


def test_a_stop_sent_to_an_identity_that_is_not_utf8(client: Client, r: redis.Redis) -> None:
    identity = b"w\xff:3:cccccccccccc"
    info = {"hostname": "w", "pid": 3, "concurrency": 5, "queues": ["default"],
            "started_at": time.time()}
    r.sadd("processes", identity)
    r.hset(identity, mapping={"info": json.dumps(info), "busy": 0, "beat": time.time(),
                              "quiet": "false"})
    r.lpush(identity + b"-signals", "TERM")
    page = html.unescape(client.get("/busy").text)
    assert row(page, "w\\xff:3:cccccccccccc") == ("stop requested", [])


def test_busy_shows_while_redis_refuses_writes(client: Client, r: redis.Redis) -> None:
    """Reading the page prunes dead processes, a write: refused for too few replicas (a
    Sentinel failover with min-replicas-to-write), the page was a bare 500."""
    r.config_set("min-replicas-to-write", 1)
    try:
        answer = client.get("/busy")
    finally:
        r.config_set("min-replicas-to-write", 0)
    assert answer.status_code == 200, answer.text[:300]


def test_stop_on_a_process_that_is_not_responding_says_it_may_never_be_read(
        client: Client, r: redis.Redis) -> None:
    process(r, W1)
    process(r, W2)
    r.hset(W1, "beat", time.time() - 40)  # killed or frozen 40 s ago
    client.submit("/busy", {"action": "stop", "identity": W1})
    said = flash(client.get("/busy").text)
    assert "Asked the process to stop (1); it is not responding" in said
    assert "next heartbeat" not in said
    client.submit("/busy", {"action": "quiet"})
    said = flash(client.get("/busy").text)
    assert "Asked every process to quiet (2); 1 of them is not responding" in said
    client.submit("/busy", {"action": "quiet", "identity": W2})
    said = flash(client.get("/busy").text)
    assert "Asked the process to quiet (1); a process does it at its next heartbeat" in said


def test_jobs_waiting_in_the_quarantine_are_shown(client: Client, r: redis.Redis) -> None:
    """They were nowhere on the dashboard: not queued, not running, not in a set."""
    assert 'id="quarantine"' not in client.get("/busy").text
    r.lpush("sq:quarantine", job_payload("q" * 24, queue="reports"),
            job_payload("r" * 24), "not json")
    page = client.get("/busy").text
    notice = page[page.index('id="quarantine"'):]
    notice = html.unescape(re.sub(r"\s+", " ", notice[:notice.index("</p>")]))
    assert "3 jobs wait in the quarantine (queues default, reports)" in notice
    assert "runs alone" in notice
