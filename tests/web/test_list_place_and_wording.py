"""The Retries, Scheduled, Dead and queue pages against real Redis data: a filtered list says
only what its search knows of the count; an action returns to the page, filter and order it
was taken from (and nowhere else); destructive buttons ask first; an empty selection says
so; counts read "1 job", not "1 jobs"."""

from __future__ import annotations

import html
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from sidequest.web.views.sets import found_note
from web_helpers import Client, enqueue, failed, flash, job, row_key

pytestmark = pytest.mark.redis

COUNT = re.compile(r'<h2>.*?<span class="muted"[^>]*>([^<]*)<', re.DOTALL)
MORE = re.compile(r'<a href="([^"]+)">More matches \u203a</a>')


def count_text(page: str) -> str:
    found = COUNT.search(page)
    assert found, "no count in the heading"
    return html.unescape(found.group(1))


def jids(page: str) -> list[str]:
    return re.findall(r'name="key" value="[^"-]+-([0-9a-f]{24})"', page)


def fill_retries(r: redis.Redis, size: int, needle_every: int = 1) -> None:
    """``size`` retries; every ``needle_every``-th has "needle" in its arguments."""
    now = time.time()
    r.zadd("retry", {failed(f"{i:024x}", args=["needle" if i % needle_every == 0 else "hay", i]):
                     now + 60 + i for i in range(size)})


def location(answer: Any) -> tuple[str, dict[str, list[str]]]:
    """Where a redirect goes: its path, and its query parsed."""
    parts = urlsplit(answer.headers["location"])
    return parts.path, parse_qs(parts.query)


def field(page: str, name: str) -> str:
    """The value of the first form field ``name`` on the page, as a browser would send it."""
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} field"
    return html.unescape(found.group(1))


def test_a_search_over_many_steps_gives_no_total_until_it_has_one(client: Client,
                                                                   r: redis.Redis) -> None:
    fill_retries(r, 300)  # every one matches: far more than one step of the search reads
    page = client.get("/retries?substr=needle&count=25").text
    first = jids(page)
    assert 25 <= len(first) < 300
    assert count_text(page) == f"first {len(first)} matches shown; more may follow"
    assert "matching" not in count_text(page)
    assert "pauses after about 25 matches" in page  # the page size, not a varying number
    seen, last = set(first), count_text(page)
    while more := MORE.search(page):
        page = client.get(html.unescape(more.group(1))).text
        seen.update(jids(page))
        last = count_text(page)
        assert "matching" not in last, last
        if MORE.search(page):
            assert re.fullmatch(r"next \d+ match(es)? shown; more may follow", last), last
    assert re.fullmatch(r"last \d+ match(es)?", last), last
    assert len(seen) == 300


def test_a_search_that_read_the_whole_set_gives_the_total(client: Client,
                                                         r: redis.Redis) -> None:
    fill_retries(r, 300, needle_every=100)  # 3 matches among 300: one request reads them all
    page = client.get("/retries?substr=needle").text
    assert count_text(page) == "3 matching"
    assert len(jids(page)) == 3 and not MORE.search(page)


def test_a_row_action_returns_to_the_page_and_filter(client: Client, r: redis.Redis) -> None:
    fill_retries(r, 60, needle_every=2)
    page = client.get("/retries?substr=needle&page=2&count=10").text
    back = field(page, "back")
    key = row_key(r, "retry", f"{0:024x}")
    answer = client.submit(f"/retries/{key}", {"action": "delete", "back": back})
    assert answer.status_code == 303
    assert location(answer) == ("/retries", {"substr": ["needle"], "page": ["2"],
                                             "count": ["10"]})
    assert r.zcard("retry") == 59


def test_bulk_and_whole_set_actions_return_to_the_page(client: Client, r: redis.Redis) -> None:
    fill_retries(r, 30)
    back = "page=2&count=10"
    key = row_key(r, "retry", f"{1:024x}")
    answer = client.submit("/retries", {"action": "delete", "key": [key], "back": back})
    assert location(answer) == ("/retries", {"page": ["2"], "count": ["10"]})
    answer = client.submit("/retries/all/kill", {"back": back})
    assert location(answer) == ("/retries", {"page": ["2"], "count": ["10"]})
    assert r.zcard("dead") == 29


def test_deleting_from_a_queue_keeps_the_order_and_page(client: Client, r: redis.Redis) -> None:
    enqueue(r, "ruby/eu", *(job(f"{i:024x}", queue="ruby/eu") for i in range(30)))
    page = client.get("/queues/ruby%2Feu?direction=asc&page=2&count=10").text
    back = field(page, "back")
    ref = field(page, "job")
    answer = client.submit("/queues/ruby%2Feu/delete_job", {"job": ref, "back": back})
    assert location(answer) == ("/queues/ruby%2Feu", {"direction": ["asc"], "page": ["2"],
                                                      "count": ["10"]})
    assert "Deleted the job." in flash(client.get(answer.headers["location"]).text)


@pytest.mark.parametrize("back", [
    "https://evil.example/", "//evil.example/retries", "/\\evil.example",
    "page=//evil.example", "page=2x&count=-1&direction=sideways&next=https://evil.example",
    "substr=a%0d%0aLocation:%20https://evil.example",
])
def test_the_place_is_only_known_parameters_of_this_list(client: Client, r: redis.Redis,
                                                         back: str) -> None:
    fill_retries(r, 3)
    key = row_key(r, "retry", f"{0:024x}")
    answer = client.submit(f"/retries/{key}", {"action": "delete", "back": back})
    path, query = location(answer)
    assert path == "/retries" and "evil" not in answer.headers["location"].split("?")[0]
    assert set(query) <= {"substr"}  # nothing but a filter, kept as (quoted) text
    assert "\n" not in answer.headers["location"] and "\r" not in answer.headers["location"]


def test_an_empty_selection_says_so(client: Client, r: redis.Redis) -> None:
    fill_retries(r, 2)
    answer = client.submit("/retries", {"action": "retry"})
    assert answer.status_code == 303
    page = client.get(answer.headers["location"]).text
    assert flash(page) == "No jobs selected: tick the jobs first."
    assert r.zcard("retry") == 2


def test_destructive_buttons_ask_first(client: Client, r: redis.Redis) -> None:
    fill_retries(r, 2)
    page = html.unescape(client.get("/retries").text)
    assert page.count('data-confirm="Delete this job?"') == 2
    assert page.count('data-confirm="Kill this job? It moves to Dead."') == 2
    assert re.search(r'<button[^>]*value="delete"[^>]*data-confirm="Delete the selected jobs\?"',
                     page)
    assert re.search(r'<button[^>]*value="kill"[^>]*data-confirm="Kill the selected jobs\? '
                     r'They move to Dead\."', page)
    retry = re.search(r'<button[^>]*value="retry"[^>]*>', page)
    assert retry and "data-confirm" not in retry.group(0)  # retrying destroys nothing
    detail = html.unescape(client.get(f"/retries/{row_key(r, 'retry', f'{0:024x}')}").text)
    assert 'data-confirm="Delete this job?"' in detail


def test_counts_and_questions_read_well(client: Client, r: redis.Redis) -> None:
    enqueue(r, "ruby/eu", job("a" * 24, queue="ruby/eu"))
    r.zadd("dead", {failed("b" * 24): time.time()})
    queue = client.get("/queues/ruby%2Feu").text
    assert count_text(queue) == "1 job"
    assert "Queue <code>ruby/eu</code>" in queue
    dead = html.unescape(client.get("/morgue").text)
    assert count_text(dead) == "1 job" and "1 jobs" not in dead
    assert 'data-confirm="Retry every job in Dead now?"' in dead
    assert 'data-confirm="Delete every job in Dead?"' in dead
    enqueue(r, "ruby/eu", job("c" * 24, queue="ruby/eu"))
    assert count_text(client.get("/queues/ruby%2Feu").text) == "2 jobs"


@pytest.mark.parametrize(("found", "cursor", "next_cursor", "said"), [
    (55, 0, 0, "55 matching"),
    (1, 0, 0, "1 matching"),
    (49, 0, 17, "first 49 matches shown; more may follow"),
    (1, 17, 30, "next 1 match shown; more may follow"),
    (12, 17, 0, "last 12 matches"),
    (0, 0, 17, "none found yet; more may follow"),
    (0, 17, 0, "no more matches"),
])
def test_what_each_part_of_a_search_says(found: int, cursor: int, next_cursor: int,
                                         said: str) -> None:
    assert found_note(found, cursor, next_cursor) == said


def test_a_long_error_is_cut_with_an_ellipsis_in_the_list(client: Client, r: redis.Redis) -> None:
    # Cut at 200 characters mid-sentence, it read as the whole message.
    r.zadd("retry", {failed("l" * 24, error_message="x" * 150 + " tail " + "y" * 200): 1e9})
    page = html.unescape(client.get("/retries").text)
    assert "x" * 150 + " tail " + "y" * 43 + "…" in page  # 199 characters and the mark
