"""The dashboard of two shards in a real browser (Debian's Chromium driven by Playwright):
the overview's Shards table, the header's shard selector, a shard's pages and an action on
one shard leaving the other untouched, with no script or CSP error on any page.

Skipped when Chromium or Playwright is missing, except under CI=true where that fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from sidequest.web import create_app
from web_helpers import PASSWORD, browser_tab, enqueue, job

pytestmark = pytest.mark.redis



@pytest.fixture
def page(two_shards: tuple[redis.Redis, redis.Redis]) -> Iterator[Any]:
    with browser_tab(create_app(password=PASSWORD)) as tab:
        tab.on("dialog", lambda dialog: dialog.accept())
        yield tab


def test_browse_and_act_on_each_shard(page: Any,
                                      two_shards: tuple[redis.Redis, redis.Redis]) -> None:
    from playwright.sync_api import expect  # the page fixture skips where it is missing

    first, second = two_shards
    first.set("stat:processed", 40)
    second.set("stat:processed", 2)
    enqueue(first, "reports", job("a" * 24, queue="reports"))  # a same-named queue on both
    enqueue(second, "reports", job("b" * 24, queue="reports"), job("c" * 24, queue="reports"))
    page.goto("/")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    table = page.locator("#shards")
    assert table.locator("tbody tr").all_inner_texts()[1].split()[:2] == ["reports", "2"]
    assert table.locator('[data-total="processed"]').inner_text() == "42"
    page.click("nav.shards >> text=reports")  # the selector keeps the tab: the overview
    page.wait_for_url("**/shards/reports/")
    # Its real-time graph polls that shard's figures. A locator, not page.wait_for_function,
    # which evaluates a string in the page: the dashboard's CSP forbids that.
    expect(page.locator("#realtime-status")).not_to_contain_text("waiting")
    page.click("header nav >> text=Queues")
    page.wait_for_url("**/shards/reports/queues")
    assert page.locator("#queues tbody tr").count() == 1
    page.click("#queues button:has-text('Delete')")
    page.wait_for_url("**/shards/reports/queues")
    assert page.locator(".flash").inner_text() == "Deleted the queue reports and its 2 jobs."
    assert second.llen("queue:reports") == 0 and first.llen("queue:reports") == 1
    page.click("nav.shards >> text=default")
    page.wait_for_url(lambda url: url.endswith("/queues") and "/shards/" not in url)
    assert page.locator("#queues tbody tr").count() == 1
