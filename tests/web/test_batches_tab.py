"""The Batches tab shows each recent batch's progress, state and failed jobs (linked), a
page at a time with how many there are, and finds an older one by its id."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
import redis
from redis.connection import AbstractConnection

from sidequest import Batch, Job, keys
from sidequest.batch import update
from web_helpers import Client


class Step(Job):
    def perform(self) -> None:
        pass


def test_batches_show_progress_state_and_failures(client: Client, r: redis.Redis) -> None:
    assert "No batches in the last 30 days" in client.get("/batches").text
    batch = Batch(description="nightly <import>")
    with batch.jobs():
        first, second, third = (Step.perform_async() for _ in range(3))
    assert first and second and third
    update(batch.ancestry, first, "success")
    update(batch.ancestry, second, "failure")
    page = client.get("/batches")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "nightly <import>" in text and "<strong>nightly <import></strong>" not in page.text
    row = text[text.index(f'data-bid="{batch.bid}"'):]
    row = row[:row.index("</tr>")]
    assert 'max="3" value="1"' in row and '<td class="num pending">2</td>' in row
    assert f'href="/retries?substr={second}"' in row and "running" in row
    # A link to look for the failed job in each set, not a "(dead set)" that reads as a fact.
    assert f'href="/morgue?substr={second}">Dead</a>' in row and "dead set" not in row
    update(batch.ancestry, third, "success")
    update(batch.ancestry, second, "success")
    assert "succeeded" in client.get("/batches").text


def _index_in_order(r: redis.Redis, bids: list[str]) -> None:
    r.zadd(keys.BATCHES, {bid: 1_700_000_000 + n for n, bid in enumerate(bids)})


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-bid="([^"]+)"', page)


def _heading(page: str) -> str:
    found = re.search(r'<h2>Batches <span class="muted">([^<]*)</span>', page)
    return html.unescape(found.group(1)) if found else ""


class RoundTrips:
    """Counts the requests sent to Redis (a pipeline is one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        send = AbstractConnection.send_packed_command

        def counted(connection: AbstractConnection, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            send(connection, *args, **kwargs)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)


def test_more_batches_than_a_page_say_so_and_page_on(client: Client, r: redis.Redis,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bids = [Batch(description=f"import {n}").bid for n in range(130)]
    _index_in_order(r, bids)
    trips = RoundTrips(monkeypatch)
    first = client.get("/batches").text
    # The session's check, the index, the page's batches: not one per batch.
    assert trips.count <= 4, trips.count
    assert _heading(first) == "the newest 100 of 130"
    assert _rows(first) == bids[::-1][:100]
    assert "Page 1 of 2" in first and 'href="/batches?page=2"' in first
    second = client.get("/batches?page=2").text
    assert _heading(second) == "101 to 130 of 130, newest first"
    assert _rows(second) == bids[::-1][100:]  # the oldest is on the last page
    assert 'href="/batches?page=1"' in second
    # Past the end: the last page, as the other tabs do.
    assert _rows(client.get("/batches?page=99").text) == bids[::-1][100:]
    small = client.get("/batches?count=50&page=3").text
    assert _heading(small) == "101 to 130 of 130, newest first"
    assert "Page 3 of 3" in small


def test_a_few_batches_show_their_number(client: Client) -> None:
    for n in range(3):
        Batch(description=f"import {n}")
    page = client.get("/batches").text
    assert _heading(page) == "3" and len(_rows(page)) == 3
    assert 'class="pager"' not in page


def test_a_batch_is_found_by_its_id(client: Client, r: redis.Redis) -> None:
    bids = [Batch(description=f"import {n}").bid for n in range(105)]
    _index_in_order(r, bids)
    parent = Batch(description="parent")
    child = Batch(description="child", parent=parent)
    oldest = client.get(f"/batches?bid={bids[0]}").text
    assert _rows(oldest) == [bids[0]] and "import 0" in oldest
    assert f'name="bid" type="search" value="{bids[0]}"' in oldest
    assert 'href="/batches">All batches</a>' in oldest
    # A child links to its parent's own lookup: it may be on another page.
    row = client.get(f"/batches?bid={child.bid}").text
    assert f'href="/batches?bid={parent.bid}"' in row
    unknown = client.get("/batches?bid=" + "0" * 24)
    assert unknown.status_code == 200 and _rows(unknown.text) == []
    assert f"No batch {'0' * 24} here" in unknown.text and "kept 30 days" in unknown.text
    # Not a batch id: said so, and not read (a batch's pending set is no batch).
    odd = client.get(f"/batches?bid={bids[0]}:pending").text
    assert "a batch id is letters, digits" in html.unescape(odd) and _rows(odd) == []


def test_an_odd_key_in_the_index_does_not_take_the_page_down(client: Client,
                                                             r: redis.Redis) -> None:
    good = Batch(description="good").bid
    r.set(keys.batch("odd"), "not a hash")  # another tool's key where a batch would be
    r.zadd(keys.BATCHES, {"odd": 1e12})
    page = client.get("/batches")
    assert page.status_code == 200 and _rows(page.text) == [good]


def _state(page: str, bid: str) -> str:
    row = page[page.index(f'data-bid="{bid}"'):]
    row = row[:row.index("</tr>")]
    return re.findall(r'<span class="badge[^"]*"[^>]*>([^<]*)</span>', row)[-1]


def test_a_batch_whose_block_raised_says_it_is_not_sealed(client: Client) -> None:
    """Its "0 of 0" would read as running forever: its callbacks wait for a block's end."""
    raised, filling, sealed = (Batch(description=name) for name in ("raised", "open", "ok"))
    with pytest.raises(RuntimeError), raised.jobs():
        Step.perform_async()
        raise RuntimeError("the rows could not be read")
    with sealed.jobs():
        Step.perform_async()
    page = client.get("/batches").text
    assert _state(page, raised.bid) == "not sealed" and _state(page, filling.bid) == "not sealed"
    assert _state(page, sealed.bid) == "running"
    assert "not sealed" in client.get(f"/batches?bid={raised.bid}").text
