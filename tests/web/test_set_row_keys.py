"""One row of Retries, Scheduled or Dead names one entry: pressing Delete, Kill or Retry now on
it acts on that entry alone, even beside others with the same score and jid (unreadable
payloads moved in one step, or one job scheduled twice with other arguments), and its page
opens that entry. Sidekiq's ``<score>-<jid>`` keys still name one entry, never all."""

from __future__ import annotations

import html
import json
import re

import pytest
import redis

from sidequest.api import DeadSet
from sidequest.api.refs import parse_ref
from web_helpers import Client, failed, flash, job

pytestmark = pytest.mark.redis

WHEN = 1_700_000_000.25
#: Unreadable payloads, as a poison-pill burial or another program leaves them: no jid.
UNREADABLE = [b"\xff\xfe garbage %d" % n for n in range(4)]


def keys_on(page: str) -> list[str]:
    return [html.unescape(k) for k in re.findall(r'name="key" value="([^"]+)"', page)]


def test_delete_on_one_of_several_alike_rows_deletes_that_one(client: Client,
                                                              r: redis.Redis) -> None:
    r.zadd("dead", {raw: WHEN for raw in UNREADABLE})
    keys = keys_on(client.get("/morgue").text)
    assert len(set(keys)) == 4  # four rows, four names
    answer = client.submit(f"/morgue/{keys[1]}", {"action": "delete"})
    assert answer.status_code == 303
    assert "Deleted: 1 of 1." in flash(client.get("/morgue").text)
    assert r.zcard("dead") == 3


def test_each_of_them_opens_its_own_page(client: Client, r: redis.Redis) -> None:
    r.zadd("schedule", {job("s" * 24, args=[n]): WHEN for n in range(3)})
    page = client.get("/scheduled").text
    links = sorted(set(re.findall(r'href="(/scheduled/[^"]+)"', page)))
    assert len(links) == 3
    shown = set()
    for link in links:
        detail = html.unescape(client.get(link).text)
        args = re.search(r"<th>args</th><td><pre>\[\s*(\d+)\s*\]", detail)
        assert args is not None, detail
        shown.add(args.group(1))
    assert shown == {"0", "1", "2"}


@pytest.mark.parametrize("case", [
    ("scheduled", "schedule", "add_to_queue", "queue:default"),
    ("retries", "retry", "retry", "queue:default"),
    ("retries", "retry", "kill", "dead"),
])
def test_actions_on_one_row_move_that_entry_only(client: Client, r: redis.Redis,
                                                 case: tuple[str, str, str, str]) -> None:
    slug, zset, action, moved_to = case
    r.zadd(zset, {failed("j" * 24, args=[n]): WHEN for n in range(3)})
    chosen = keys_on(client.get(f"/{slug}").text)[2]
    client.submit(f"/{slug}/{chosen}", {"action": action})
    assert r.zcard(zset) == 2
    moved = r.lrange(moved_to, 0, -1) if moved_to.startswith("queue:") else r.zrange(
        moved_to, 0, -1)
    assert len(moved) == 1
    args = {json.loads(raw)["args"][0] for raw in r.zrange(zset, 0, -1)}
    assert json.loads(moved[0])["args"][0] not in args


def test_selected_rows_act_on_those_entries(client: Client, r: redis.Redis) -> None:
    r.zadd("dead", {raw: WHEN for raw in UNREADABLE})
    keys = keys_on(client.get("/morgue").text)
    client.submit("/morgue", {"action": "delete", "key": keys[:2]})
    assert "Deleted: 2 of 2." in flash(client.get("/morgue").text)
    assert r.zcard("dead") == 2


def test_a_sidekiq_style_key_acts_on_one_entry(client: Client, r: redis.Redis) -> None:
    r.zadd("dead", {raw: WHEN for raw in UNREADABLE})
    old_style = f"{WHEN!r}-"  # score and an empty jid: all four
    assert client.get(f"/morgue/{old_style}").status_code == 200
    client.submit(f"/morgue/{old_style}", {"action": "delete"})
    assert "Deleted: 1 of 1." in flash(client.get("/morgue").text)
    assert r.zcard("dead") == 3


def test_a_key_whose_entry_is_gone_acts_on_nothing(client: Client, r: redis.Redis) -> None:
    r.zadd("retry", {failed("k" * 24): WHEN})
    (key,) = keys_on(client.get("/retries").text)
    r.delete("retry")
    r.zadd("retry", {failed("k" * 24, args=[99]): WHEN})  # same score and jid, not the same
    assert client.get(f"/retries/{key}").status_code == 404
    client.submit(f"/retries/{key}", {"action": "delete"})
    assert r.zcard("retry") == 1


def test_the_api_keeps_sidekiqs_id_and_adds_ref(r: redis.Redis) -> None:
    r.zadd("dead", {raw: WHEN for raw in UNREADABLE})
    entries = DeadSet().page(1, 10)
    assert {e.id for e in entries} == {f"{WHEN!r}-"}
    refs = [e.ref for e in entries]
    assert len(set(refs)) == 4
    for entry, ref in zip(entries, refs, strict=True):
        found = DeadSet().entry(*parse_ref(ref))  # type: ignore[misc]
        assert found is not None and found.raw == entry.raw
    assert parse_ref("-1.5~" + "a" * 32 + "-x-y/z") == (-1.5, "x-y/z", "a" * 32)
    assert parse_ref("1.5-x-y") == (1.5, "x-y", None)
    assert parse_ref("garbage") is None
    assert parse_ref("1.5-a~" + "b" * 32 + "-c") == (1.5, "a~" + "b" * 32 + "-c", None)
    assert len(DeadSet().fetch(WHEN, "")) == 4  # fetch still finds every one
