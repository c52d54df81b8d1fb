"""The dashboard on a phone (390 x 844, in Debian's Chromium driven by Playwright): no page
scrolls sideways, a wide table scrolls inside its own box with its action buttons reachable
there, the tabs stay a compact header; and the bulk Delete asks before it deletes.

Skipped when Chromium or Playwright is missing, except under CI=true where that fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from sidequest import Batch, Job, connection, limiter, periodic_jobs
from sidequest.batch import update
from sidequest.metrics import Recorder
from sidequest.web import create_app
from sidequest.worker.periodic import register
from web_helpers import (
    PASSWORD,
    browser_tab,
    enqueue,
    failed,
    job,
    process,
    row_key,
)

pytestmark = pytest.mark.redis

PHONE = {"width": 390, "height": 844}
#: Pages with a table.data and the buttons in its rows (None: a table without buttons).
PAGES = {
    "/busy": "#processes td.row-actions button",
    "/queues": "#queues td.row-actions button",
    "/queues/ruby%2Feu": "#jobs td.row-actions button",
    "/queues/ruby%2Feu?direction=asc&page=2&count=1": "#jobs td.row-actions button",
    "/retries": "#jobs td.row-actions button",
    "/retries?substr=report": "#jobs td.row-actions button",
    "/scheduled": "#jobs td.row-actions button",
    "/morgue": "#jobs td.row-actions button",
    "/periodic": "#periodic td.row-actions button",
    "/batches": None,
    "/metrics": None,
    "/limiters": None,
}
#: Pages without a data table, whose long names must not widen them either.
OTHER_PAGES = ("/", "/metrics/app.jobs.{long}", "/retries/{key}",
               "/retries?substr=nomatch")  # a filter with its Clear link
#: Whether an element sits in a box of its own that scrolls sideways (not the page's).
SCROLLS_INSIDE = """b => {
  for (let e = b.parentElement; e && e !== document.body; e = e.parentElement) {
    if (["auto", "scroll"].includes(getComputedStyle(e).overflowX)) return true;
  }
  return false;
}"""
#: Long enough, without a space, to stretch any cell that does not wrap.
LONG = "customer-" + "x" * 60


class Step(Job):
    def perform(self) -> None:
        pass


@pytest.fixture
def phone(redis_url: str) -> Iterator[Any]:
    # Not is_mobile: a mobile layout viewport widens to fit an overflowing page, which would
    # hide the very overflow looked for.
    with browser_tab(create_app(password=PASSWORD, title="Shop jobs"), viewport=PHONE) as tab:
        _log_in(tab)
        yield tab


def _log_in(tab: Any) -> None:
    tab.goto("/login")
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)


def _fill(r: redis.Redis) -> None:
    """Some data of every kind, with the long values real jobs have."""
    now = time.time()
    queued = [job(f"{i:024x}", klass="app.jobs.Export", queue="ruby/eu", args=[LONG, i])
              for i in range(3)]
    enqueue(r, "ruby/eu", *queued)
    for zset, offset in (("retry", 3600), ("schedule", 7200), ("dead", -3600)):
        for i in range(3):
            payload = failed(f"{zset[0]}{i:023x}", klass="app.jobs.Report", queue="ruby/eu",
                             args=[LONG, i], error_message="report failed: " + LONG)
            r.zadd(zset, {payload: now + offset + i})
    process(r, f"{LONG}:4242:aaaaaaaaaaaa", busy=1,
            work={"t1": job("f" * 24, klass="app.jobs.Export", args=[LONG])})
    _periodic_and_batches(r)
    _metrics_and_limiters()


def _periodic_and_batches(r: redis.Redis) -> None:
    entry = periodic_jobs.make_entry("app.jobs.NightlyReport", cron="30 2 * * *", args=[LONG],
                                     tz="America/Argentina/Buenos_Aires",
                                     name="nightly-report-" + LONG, queue="reports")
    register(connection.client(), entry, int(r.time()[0]))
    batch = Batch(description="nightly import " + LONG)
    with batch.jobs():
        jids = [Step.perform_async() for _ in range(3)]
    update(batch.ancestry, str(jids[0]), "failure")


def _metrics_and_limiters() -> None:
    recorder = Recorder()
    recorder.record("app.jobs." + LONG, 1234.5, failed=False)
    recorder.flush()
    recorder.close()
    limiter.bucket("github-" + LONG, 5000, "hour").acquire()


def _sideways(tab: Any) -> int:
    """How far the page itself scrolls sideways (0 when it fits the screen)."""
    return int(tab.evaluate(
        "() => document.documentElement.scrollWidth - window.innerWidth"))


def _reachable(tab: Any, selector: str) -> str | None:
    """Why the page's last row button (the rightmost column of the last row) cannot be
    scrolled into view inside its table's scrolling box, the page staying put; None when
    it can."""
    button = tab.locator(selector).last
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    if not button.evaluate(SCROLLS_INSIDE):
        return "not inside a box that scrolls sideways"
    if tab.evaluate("() => window.scrollX") != 0:
        return "the page scrolled sideways to show it"
    if box is None or box["x"] < 0 or box["x"] + box["width"] > PHONE["width"]:
        return f"off screen at {box}"
    button.click(trial=True)  # nothing covers it: a tap would reach it
    return None


def test_no_page_scrolls_sideways_on_a_phone(phone: Any, r: redis.Redis) -> None:
    _fill(r)
    problems = []
    for path, buttons in PAGES.items():
        phone.goto(path)
        assert phone.locator("table.data").count(), f"{path} shows no table"
        if (overflow := _sideways(phone)) > 0:
            problems.append(f"{path}: the page scrolls {overflow}px sideways")
        if buttons and (why := _reachable(phone, buttons)):
            problems.append(f"{path}: {buttons}: {why}")
    key = row_key(r, "retry", f"r{0:023x}")
    for path in (template.format(long=LONG, key=key) for template in OTHER_PAGES):
        phone.goto(path)
        if (overflow := _sideways(phone)) > 0:
            problems.append(f"{path}: the page scrolls {overflow}px sideways")
    assert not problems, "\n".join(problems)


def test_the_tabs_are_a_compact_header_on_a_phone(phone: Any) -> None:
    phone.goto("/retries")
    height = phone.locator("header.top").bounding_box()["height"]
    assert height <= 120, f"the header takes {height}px of an 844px screen"
    assert _sideways(phone) <= 0
    for label in ("Dashboard", "Retries", "Dead", "Batches"):
        assert phone.locator("header.top nav a", has_text=label).is_visible()


def test_bulk_delete_asks_first(phone: Any, r: redis.Redis) -> None:
    now = time.time()
    r.zadd("dead", {failed(f"{i:024x}"): now - i for i in range(2)})
    phone.goto("/morgue")
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    phone.on("dialog", answer)
    phone.locator("#jobs tbody input[type=checkbox]").first.check()
    phone.locator("#bulk button", has_text="Delete").click()
    assert asked == ["Delete the selected jobs?"]
    assert r.zcard("dead") == 2  # declined: nothing deleted
    phone.remove_listener("dialog", answer)
    phone.once("dialog", lambda dialog: dialog.accept())
    phone.locator("#bulk button", has_text="Delete").click()
    phone.wait_for_selector(".flash")
    assert "Deleted: 1 of 1." in phone.inner_text(".flash")
    assert r.zcard("dead") == 1
