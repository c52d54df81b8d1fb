"""The Dashboard's real-time graph through failed polls (in Debian's Chromium driven by
Playwright): it says why it is failing, waits longer after each failure, and resumes at its
own pace, the message gone, once a poll succeeds; it never stops for good.

Skipped when Chromium or Playwright is missing, except under CI=true where that fails."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sidequest.web import create_app
from sidequest.web.server import BackgroundServer
from web_helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, need_browser

pytestmark = pytest.mark.redis

#: The page's interval (the shortest it takes), doubled after each failure.
POLL = 2
#: What the browser logs, as a console error, for a poll that failed: expected here.
FAILED_LOAD = "Failed to load resource"


@pytest.fixture
def tab(redis_url: str) -> Iterator[Any]:
    """A logged-in Chromium tab; like web_helpers.browser_tab, but the failed loads this test
    causes are no script errors."""
    need_browser()
    from playwright.sync_api import sync_playwright

    live = BackgroundServer(create_app(password=PASSWORD)).start()
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = chromium.new_context(base_url=live.url.rstrip("/")).new_page()
            page.on("console", lambda m: problems.append(m.text)
                    if m.type == "error" and FAILED_LOAD not in m.text else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.set_default_timeout(15_000)
            page.goto("/login")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url)
            try:
                yield page
            finally:
                chromium.close()
    finally:
        live.stop()
    assert not problems, problems


class FlakyStats:
    """Answers the page's polls: the given failures first ("503" as the server answers while
    Redis is down, "down" as no server at all), then the real endpoint; notes each poll's
    time."""

    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.times: list[float] = []

    def __call__(self, route: Any) -> None:
        self.times.append(time.monotonic())
        if not self.failures:
            route.continue_()
        elif self.failures.pop(0) == "503":
            route.fulfill(status=503, content_type="text/html", body="Redis is unreachable")
        else:
            route.abort("connectionrefused")

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def test_the_graph_keeps_polling_through_failures_and_recovers(tab: Any) -> None:
    from playwright.sync_api import expect

    stats = FlakyStats("503", "down")
    tab.route(re.compile(r"/stats$"), stats)
    tab.goto(f"/?poll={POLL}")
    status, box = tab.locator("#realtime-status"), tab.locator("#realtime")
    expect(status).to_have_text("Redis unreachable, retrying…")
    expect(box).to_have_attribute("data-failing", "1")
    expect(status).to_have_text("the dashboard is not answering, retrying…")
    expect(box).to_have_attribute("data-failing", "2")
    expect(status).to_have_text(re.compile("^updated "), timeout=20_000)
    expect(box).not_to_have_attribute("data-failing", re.compile("."))
    # The second poll after the failures draws again (the first is its new baseline).
    expect(tab.locator("#realtime-last-processed")).to_have_text(re.compile(r"^\d"))
    assert len(stats.times) >= 4, stats.times
    first, second, third = stats.gaps()[:3]
    # A timer never fires early: each failure in a row doubled the wait before the next poll.
    assert first >= 2 * POLL * 0.95, stats.gaps()
    assert second >= 4 * POLL * 0.95, stats.gaps()
    # After the success, the next poll comes at the chosen interval, not the backed-off one.
    assert POLL * 0.95 <= third < 4 * POLL, stats.gaps()
    assert status.inner_text().startswith("updated ")
