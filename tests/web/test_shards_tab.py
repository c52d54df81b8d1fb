"""The dashboard with two shards (two real redis-servers): the overview shows each shard and
the sum, /shards/NAME/... shows and acts on that shard only, with the usual login and CSRF
rules."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from starlette.applications import Starlette

from sidequest import __version__
from sidequest.web.render import TABS
from web_helpers import SAME_ORIGIN, Client, enqueue, job

pytestmark = pytest.mark.redis

A, B, C = "a" * 24, "b" * 24, "c" * 24


@pytest.fixture
def browser(two_shards: tuple[redis.Redis, redis.Redis], app: Starlette) -> Iterator[Client]:
    with Client(app) as client:
        assert client.login().status_code == 303
        yield client


def test_the_overview_shows_each_shard_and_the_total(two_shards: tuple[redis.Redis, redis.Redis],
                                                     browser: Client) -> None:
    first, other = two_shards
    first.set("stat:processed", 100)
    other.set("stat:processed", 23)
    enqueue(first, "default", job(A))
    enqueue(other, "reports", job(B, queue="reports"), job(C, queue="reports"))
    page = browser.get("/").text
    rows = re.findall(r'<tr[^>]*>\s*<td><a href="([^"]+)">([^<]+)</a></td>(.*?)</tr>', page,
                      re.S)
    assert [(href, name) for href, name, _ in rows] == [("/", "default"),
                                                        ("/shards/reports/", "reports")]
    assert 'data-total="processed">123<' in page and 'data-total="enqueued">3<' in page
    # The header's shard selector keeps the page: the same tab on the other shard.
    queues = browser.get("/queues").text
    assert 'href="/shards/reports/queues"' in queues and 'href="/queues"' in queues


def test_a_shards_pages_show_its_data(two_shards: tuple[redis.Redis, redis.Redis],
                                      browser: Client) -> None:
    first, other = two_shards
    enqueue(first, "default", job(A))
    enqueue(other, "reports", job(B, queue="reports"))
    default_page = browser.get("/queues").text
    reports_page = browser.get("/shards/reports/queues").text
    assert 'href="/queues/default"' in default_page and "/queues/reports" not in default_page
    assert 'href="/shards/reports/queues/reports"' in reports_page
    assert "/queues/default" not in reports_page
    assert browser.get("/shards/reports/queues/reports").text.count(B) >= 1
    body = browser.get("/shards/reports/stats").json()
    assert body["sidequest"]["enqueued"] == 1
    # The static files stay at the dashboard's root.
    assert 'href="/static/app.css' in reports_page


def test_an_action_acts_on_the_shard_of_its_url_with_csrf(
        two_shards: tuple[redis.Redis, redis.Redis], browser: Client) -> None:
    first, other = two_shards
    enqueue(first, "reports", job(A, queue="reports"))  # a queue of that name on both
    enqueue(other, "reports", job(B, queue="reports"))
    refused = browser.post("/shards/reports/queues/reports/delete", data={"csrf": "forged"},
                           headers=SAME_ORIGIN, follow_redirects=False)
    assert refused.status_code == 403 and other.llen("queue:reports") == 1
    done = browser.submit("/shards/reports/queues/reports/delete")
    assert done.status_code == 303 and done.headers["location"] == "/shards/reports/queues"
    assert other.llen("queue:reports") == 0
    assert first.llen("queue:reports") == 1  # the default shard's queue is untouched


def test_unknown_shard_and_logged_out(two_shards: tuple[redis.Redis, redis.Redis], browser: Client,
                                      app: Starlette) -> None:
    missing = browser.get("/shards/nope/queues")
    assert missing.status_code == 404 and "the shards are: default, reports" in missing.text
    with Client(app) as anon:
        page = anon.get("/shards/reports/queues", headers={"Accept": "text/html"},
                        follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login?next=")


def test_the_login_page_shows_nothing_of_the_deployment(
        two_shards: tuple[redis.Redis, redis.Redis], app: Starlette) -> None:
    """A visitor who has not logged in sees the product's name and the form: no tabs, no
    shard names, no version."""
    with Client(app) as anon:
        for answer in (anon.get("/login"), anon.submit("/login", {"password": "wrong"})):
            page = answer.text
            assert 'name="password"' in page and "Log in to Sidequest" in page
            assert "<nav" not in page
            assert not re.search(r"\b(default|reports|shards)\b", page), page
            assert not any(f">{label}<" in page for _, label in TABS)
            assert __version__ not in page
