"""Kill on the Retries tab moves jobs into Dead, which keeps at most 10,000 jobs (none older
than 180 days) and deletes its oldest to stay so. The question before a Kill says what it
will delete, and the message after it says what went; before, both said only "They move to
Dead." while the oldest dead jobs silently disappeared."""

from __future__ import annotations

import html
import json
import re
import time
from typing import Any

import pytest
import redis

from sidequest.morgue import DEAD_MAX_JOBS, DEAD_TIMEOUT
from sidequest.web.deadroom import DeadRoom
from web_helpers import Client, failed, flash, row_key

pytestmark = pytest.mark.redis

LIMITS = "Dead keeps at most 10,000 jobs, none older than 180 days"
#: What the message after a Kill adds when it deleted dead jobs.
WENT = "deleted from Dead, which keeps at most 10,000 jobs, none older than 180 days."


def fill_dead(r: redis.Redis, count: int, oldest: float | None = None,
              prefix: str = "d") -> list[str]:
    """``count`` dead jobs, oldest first from ``oldest`` (a day ago by default); their jids."""
    start = time.time() - 86400 if oldest is None else oldest
    jids = [f"{prefix}{i:023x}" for i in range(count)]
    pipe = r.pipeline(transaction=False)
    for at in range(0, count, 1000):
        pipe.zadd("dead", {failed(jid): start + i for i, jid in
                           enumerate(jids[at:at + 1000], at)})
    pipe.execute()
    return jids


def fill_retries(r: redis.Redis, count: int) -> list[str]:
    jids = [f"r{i:023x}" for i in range(count)]
    r.zadd("retry", {failed(jid): time.time() + 60 + i for i, jid in enumerate(jids)})
    return jids


def confirms(page: str) -> list[str]:
    return re.findall(r'data-confirm="([^"]*)"', html.unescape(page).replace("&quot;", '"'))


def question(page: str, start: str) -> str:
    found = [text for text in confirms(page) if text.startswith(start)]
    assert found, (start, confirms(page))
    return found[0]


def message(client: Client, answer: Any) -> str:
    """The message the page after an action shows."""
    assert answer.status_code == 303
    return html.unescape(flash(client.get(answer.headers["location"]).text))


def test_a_kill_into_a_full_dead_set_says_what_it_deletes(client: Client,
                                                          r: redis.Redis) -> None:
    dead = fill_dead(r, DEAD_MAX_JOBS)
    retries = fill_retries(r, 3)
    page = client.get("/retries").text
    assert question(page, "Kill this job?") == (
        f"Kill this job? It moves to Dead. {LIMITS}: this deletes the oldest job in Dead.")
    assert question(page, "Kill the selected jobs?") == (
        f"Kill the selected jobs? They move to Dead. {LIMITS}: each job killed deletes the"
        " oldest job in Dead.")
    assert question(page, "Kill every job") == (
        f"Kill every job in Retries? They move to Dead. {LIMITS}: this deletes the 3 oldest"
        " jobs in Dead.")
    detail = client.get(f"/retries/{row_key(r, 'retry', retries[0])}").text
    assert question(detail, "Kill this job?").endswith("this deletes the oldest job in Dead.")

    answer = client.submit(f"/retries/{row_key(r, 'retry', retries[0])}", {"action": "kill"})
    assert message(client, answer) == f"Killed: 1 of 1. 1 job was {WENT}"
    assert r.zcard("dead") == DEAD_MAX_JOBS
    remaining = {json.loads(raw)["jid"] for raw in r.zrange("dead", 0, 2)}
    assert dead[0] not in remaining and dead[1] in remaining

    answer = client.submit("/retries/all/kill")
    assert message(client, answer) == f"Killed: 2. 2 jobs were {WENT}"
    assert r.zcard("dead") == DEAD_MAX_JOBS and r.zcard("retry") == 0


def test_selected_rows_killed_into_a_nearly_full_dead_set(client: Client,
                                                          r: redis.Redis) -> None:
    fill_dead(r, DEAD_MAX_JOBS - 2)
    retries = fill_retries(r, 5)
    page = client.get("/retries").text
    assert question(page, "Kill this job?") == "Kill this job? It moves to Dead."
    assert question(page, "Kill the selected jobs?") == (
        f"Kill the selected jobs? They move to Dead. {LIMITS}: it has room for 2 more; each"
        " job killed past that deletes the oldest job in Dead.")
    assert question(page, "Kill every job").endswith("this deletes the 3 oldest jobs in Dead.")
    keys = [row_key(r, "retry", jid) for jid in retries[:4]]
    answer = client.submit("/retries", {"action": "kill", "key": keys})
    assert message(client, answer) == (
        f"Killed: 4 of 4. 2 jobs were {WENT}")


def test_dead_jobs_past_their_age_are_counted_as_deleted(client: Client,
                                                         r: redis.Redis) -> None:
    fill_dead(r, 1, oldest=time.time() - DEAD_TIMEOUT - 3600)  # past 180 days
    fill_dead(r, 1, prefix="e")
    retries = fill_retries(r, 1)
    page = client.get("/retries").text
    assert question(page, "Kill this job?").endswith(f"{LIMITS}: this deletes the oldest job"
                                                     " in Dead.")
    assert question(page, "Kill the selected jobs?").endswith(
        f"{LIMITS}: the first job killed deletes the 1 job in Dead past that age.")
    answer = client.submit(f"/retries/{row_key(r, 'retry', retries[0])}", {"action": "kill"})
    assert message(client, answer) == f"Killed: 1 of 1. 1 job was {WENT}"


def test_a_kill_with_room_to_spare_says_nothing_more(client: Client, r: redis.Redis) -> None:
    fill_dead(r, 10)
    fill_retries(r, 3)
    page = client.get("/retries").text
    assert question(page, "Kill this job?") == "Kill this job? It moves to Dead."
    assert question(page, "Kill the selected jobs?") == "Kill the selected jobs? They move to Dead."
    assert question(page, "Kill every job") == "Kill every job in Retries? They move to Dead."
    answer = client.submit("/retries/all/kill")
    assert message(client, answer) == "Killed: 3."
    assert r.zcard("dead") == 13


def test_killing_more_than_dead_holds_deletes_killed_jobs_too() -> None:
    room = DeadRoom(size=500, aged=0)
    assert room.dropped(DEAD_MAX_JOBS + 200) == 700
    assert room.kill_note(DEAD_MAX_JOBS + 200) == (
        f" {LIMITS}: this deletes all 500 jobs now in Dead and 200 of the jobs killed.")
    assert DeadRoom(size=0, aged=0).kill_note(DEAD_MAX_JOBS) == ""
