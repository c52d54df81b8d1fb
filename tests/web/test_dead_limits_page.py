"""The Kill questions and messages say the limits the last started worker published
(``sq:dead_limits``), by which the Kill trims Dead: before, they said Sidekiq's defaults
(10,000 jobs, 180 days), and the Kill trimmed by them, whatever the workers' settings."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
import redis

from sidequest.web.deadroom import DeadRoom
from web_helpers import Client, failed, flash, row_key

pytestmark = pytest.mark.redis

DAY = 86400.0
LIMITS = "Dead keeps at most 5 jobs, none older than 400 days"


def bury(r: redis.Redis, jid: str, days_ago: float) -> None:
    r.zadd("dead", {failed(jid): time.time() - days_ago * DAY})


def question(page: str, start: str) -> str:
    """The confirm text of a button (as test_kill_into_full_dead reads them)."""
    shown = html.unescape(page).replace("&quot;", '"')
    asked: list[str] = re.findall(r'data-confirm="([^"]*)"', shown)
    found = [text for text in asked if text.startswith(start)]
    assert found, (start, asked)
    return found[0]


def message(client: Client, answer: Any) -> str:
    assert answer.status_code == 303
    return html.unescape(flash(client.get(answer.headers["location"]).text))


def test_kill_questions_and_messages_say_the_published_limits(client: Client,
                                                              r: redis.Redis) -> None:
    r.hset("sq:dead_limits", mapping={"max_jobs": "5", "timeout": repr(400 * DAY)})
    bury(r, "old", 200)  # kept: under 400 days
    for i in range(3):
        bury(r, f"d{i}", 1)
    retries = [f"r{i}" for i in range(4)]
    r.zadd("retry", {failed(jid): time.time() + 60 + i for i, jid in enumerate(retries)})
    page = client.get("/retries").text
    assert question(page, "Kill this job?") == "Kill this job? It moves to Dead."
    assert question(page, "Kill the selected jobs?") == (
        f"Kill the selected jobs? They move to Dead. {LIMITS}: it has room for 1 more; each"
        " job killed past that deletes the oldest job in Dead.")
    assert question(page, "Kill every job") == (
        f"Kill every job in Retries? They move to Dead. {LIMITS}: this deletes the 3 oldest"
        " jobs in Dead.")

    went = "deleted from Dead, which keeps at most 5 jobs, none older than 400 days."
    first = client.submit(f"/retries/{row_key(r, 'retry', retries[0])}", {"action": "kill"})
    assert message(client, first) == "Killed: 1 of 1."
    assert r.zcard("dead") == 5
    second = client.submit("/retries", {"action": "kill",
                                        "key": [row_key(r, "retry", retries[1])]})
    assert message(client, second) == f"Killed: 1 of 1. 1 job was {went}"
    every = client.submit("/retries/all/kill")
    assert message(client, every) == f"Killed: 2. 2 jobs were {went}"
    assert r.zcard("dead") == 5


def test_an_age_limit_that_is_not_whole_days_reads_well() -> None:
    room = DeadRoom(size=5, aged=0, max_jobs=5, timeout=400.5 * DAY)
    assert room.kill_note(1) == (" Dead keeps at most 5 jobs, none older than 400.5 days:"
                                 " this deletes the oldest job in Dead.")
    hours = DeadRoom(size=1, aged=0, max_jobs=1, timeout=12 * 3600.0)
    assert hours.kill_note(1) == (" Dead keeps at most 1 job, none older than 12 hours:"
                                  " this deletes the oldest job in Dead.")
