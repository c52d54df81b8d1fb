"""An entry whose payload cannot be read (not JSON, a JSON list, no class) cannot go to a
queue: its row offers no Retry or Add to queue and says what can be done with it, and an
action that needs the payload says how many it left for that reason. Before, "Retry now" on
one said "Retried: 0 of 1." and nothing else."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
import redis

from web_helpers import Client, failed, flash, job

pytestmark = pytest.mark.redis

GOOD = "a" * 24
#: Payloads another program could leave: not JSON, and a JSON list.
UNREADABLE = {"not json": 1.0, "[1, 2]": 2.0}


def rows(page: str) -> dict[str, str]:
    """Each table row's markup by the key its checkbox posts."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    found = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        key = re.search(r'name="key" value="([^"]+)"', row)
        assert key, row
        found[html.unescape(key.group(1))] = row
    return found


def message(client: Client, answer: Any) -> str:
    assert answer.status_code == 303
    return html.unescape(flash(client.get(answer.headers["location"]).text))


def fill(r: redis.Redis, zset: str) -> None:
    r.zadd(zset, {**UNREADABLE, failed(GOOD): time.time() + 60})


def test_an_unreadable_row_offers_only_kill_and_delete(client: Client, r: redis.Redis) -> None:
    fill(r, "retry")
    shown = rows(client.get("/retries").text)
    assert len(shown) == 3
    for key, row in shown.items():
        readable = key.endswith(GOOD)
        assert ('value="retry"' in row) == readable, row
        assert ("unreadable payload: kill or delete it" in row) == (not readable), row
        assert 'value="kill"' in row and 'value="delete"' in row
    bad = next(key for key in shown if not key.endswith(GOOD))
    detail = client.get(f"/retries/{bad}").text
    assert "unreadable payload: kill or delete it" in detail
    assert 'value="retry"' not in detail and 'value="kill"' in detail


def test_the_dead_and_scheduled_tabs_say_delete_it(client: Client, r: redis.Redis) -> None:
    fill(r, "dead")
    dead = rows(client.get("/morgue").text)
    assert sum("unreadable payload: delete it" in row for row in dead.values()) == 2
    assert sum('value="retry"' in row for row in dead.values()) == 1
    r.zadd("schedule", {**UNREADABLE, job(GOOD): time.time() + 60})
    scheduled = rows(client.get("/scheduled").text)
    assert sum('value="add_to_queue"' in row for row in scheduled.values()) == 1
    assert sum("unreadable payload: delete it" in row for row in scheduled.values()) == 2


def test_retrying_unreadable_rows_says_why_they_stayed(client: Client, r: redis.Redis) -> None:
    fill(r, "retry")
    keys = list(rows(client.get("/retries").text))
    bad = [key for key in keys if not key.endswith(GOOD)]
    answer = client.submit(f"/retries/{bad[0]}", {"action": "retry"})
    assert message(client, answer) == (
        "Retried: 0 of 1. 1 job was not retried: its payload is unreadable; kill or delete it.")
    answer = client.submit("/retries", {"action": "retry", "key": keys})
    assert message(client, answer) == (
        "Retried: 1 of 3. 2 jobs were not retried: their payloads are unreadable; kill or"
        " delete them.")
    assert r.zcard("retry") == 2 and r.llen("queue:default") == 1
    answer = client.submit("/retries", {"action": "kill", "key": bad})
    assert message(client, answer) == "Killed: 2 of 2."  # kept byte for byte in Dead
    assert r.zcard("dead") == 2


def test_whole_set_actions_count_the_unreadable_they_left(client: Client,
                                                          r: redis.Redis) -> None:
    fill(r, "retry")
    answer = client.submit("/retries/all/retry")
    assert message(client, answer) == (
        "Retried: 1. 2 jobs were not retried: their payloads are unreadable; kill or delete"
        " them.")
    r.zadd("schedule", {"not json": 1.0, job(GOOD): time.time() + 60})
    answer = client.submit("/scheduled/all/add_to_queue")
    assert message(client, answer) == (
        "Added to the queue: 1. 1 job was not added to the queue: its payload is unreadable;"
        " delete it.")
    r.zadd("dead", {"[1, 2]": 2.0})
    answer = client.submit("/morgue/all/retry")
    assert message(client, answer) == (
        "Retried: 0. 1 job was not retried: its payload is unreadable; delete it.")
    r.delete("retry")
    r.zadd("retry", {failed(GOOD): time.time()})
    assert message(client, client.submit("/retries/all/retry")) == "Retried: 1."


def test_a_long_tail_of_unreadable_jobs_is_counted_as_at_least(
        client: Client, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    from sidequest.web.views import sets

    monkeypatch.setattr(sets, "UNREADABLE_SCAN", 200)  # the count reads this many at most
    r.zadd("retry", {f"not json {i}": i for i in range(250)})
    answer = client.submit("/retries/all/retry")
    assert message(client, answer) == (
        "Retried: 0. At least 200 jobs were not retried: their payloads are unreadable; kill or"
        " delete them.")
