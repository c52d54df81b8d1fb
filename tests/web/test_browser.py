"""The dashboard in a real browser (Debian's Chromium driven by Playwright): log in, watch
the real-time graph move while a worker runs, retry a job and see it run, quiet a process,
pause a periodic job and enqueue one now, see a full rate limiter and its reschedules.

Skipped when Chromium or Playwright is missing, except under CI=true where that fails (as a
missing redis-server does). With SIDEQUEST_SCREENSHOTS=1 the pages are saved to
docs/images/ for the README (``make screenshots``); otherwise to the test's tmp dir.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job
from sidequest.web import create_app
from sidequest.web.server import BackgroundServer
from web_helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, failed, need_browser

pytestmark = pytest.mark.redis

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
QUEUE = "browser"
DONE_KEY = "browser-test:done"
RELEASE = threading.Event()


class Report(Job):
    """A job of the example kind; it marks itself done in Redis so the test can see it ran."""

    queue = QUEUE
    name = "app.jobs.Report"

    def perform(self, report_id: int, fail: bool = False) -> None:
        time.sleep(0.02)
        if fail:
            raise RuntimeError(f"report {report_id} could not be built")
        from sidequest import connection

        connection.client().sadd(DONE_KEY, report_id)


class Export(Job):
    """A job that runs until the test releases it, to be seen on the Busy page."""

    queue = QUEUE
    name = "app.jobs.Export"

    def perform(self, customer_id: int, fmt: str) -> None:
        RELEASE.wait(20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def server(redis_url: str) -> Iterator[BackgroundServer]:
    app = create_app(password=PASSWORD, title="Shop jobs")
    live = BackgroundServer(app).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def page(browser: Any, server: BackgroundServer) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url.rstrip("/"),
                                  viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    problems: list[str] = []
    # A CSP violation or a script error shows up as a console error: the page must have none.
    tab.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: problems.append(str(exc)))
    tab.on("dialog", lambda dialog: dialog.accept())  # "Delete ...?" confirmations
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        context.close()
    assert not problems, problems


def log_in(page: Any, path: str = "/") -> None:
    page.goto(path)
    assert page.url.endswith("/login?next=" + path.replace("/", "%2F").replace("?", "%3F")) or \
        "/login" in page.url
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    folder = IMAGES if os.environ.get("SIDEQUEST_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


class Traffic:
    """Enqueues a few jobs (one in ten failing) every 0.3 s until stopped."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(0.3):
            Report.perform_bulk([[n + i, (n + i) % 10 == 0] for i in range(8)])
            n += 8

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def test_login_and_the_real_time_graph_moves(page: Any, r: redis.Redis, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    for day in range(30):  # some history for the history graph
        date = time.strftime("%Y-%m-%d", time.gmtime(time.time() - day * 86400))
        r.set(f"stat:processed:{date}", 900 + (day * 337) % 800)
        r.set(f"stat:failed:{date}", (day * 53) % 90)
    log_in(page, "/?poll=2")
    assert page.inner_text(".brand") == "Shop jobs"
    # Locators and Python-side polls only: page.wait_for_function would eval a string in the
    # page, which our CSP forbids (as it should).
    expect(page.locator("#realtime-status")).to_have_text(re.compile("^updated"))
    with running_worker(queues=((QUEUE, 1),), concurrency=5), Traffic():
        expect(page.locator("#realtime-last-processed")).to_have_text(re.compile(r"^[1-9]"),
                                                                        timeout=20_000)
        wait_for(lambda: _points(page) >= 4, 30, "four polls drawn on the real-time graph")
        heights = {p.split(",")[1] for p in page.get_attribute("#realtime-processed",
                                                                "points").split()}
        assert len(heights) > 1, "the line does not move"
        processed = int(page.inner_text('[data-stat="processed"]').replace(",", ""))
        assert processed > 0  # the summary numbers are live too
        screenshot(page, "dashboard", tmp_path)


def _points(page: Any) -> int:
    return len((page.get_attribute("#realtime-processed", "points") or "").split())


def test_retry_a_job_from_the_retries_page(page: Any, r: redis.Redis, tmp_path: Path) -> None:
    now = time.time()
    errors = ["report 17 could not be built", "connection reset by peer",
              "timed out after 30s", "PDF renderer crashed"]
    for i, message in enumerate(errors * 2):
        payload = failed(f"{i + 1:024x}", klass="app.jobs.Report", queue=QUEUE,
                         args=[100 + i], error_class="RuntimeError", error_message=message,
                         retry_count=i % 4)
        r.zadd("retry", {payload: now + 3600 * (i + 1)})
    log_in(page, "/retries")
    assert page.locator("#jobs tbody tr").count() == 8
    screenshot(page, "retries", tmp_path)
    row = page.locator("#jobs tbody tr", has_text="[100]")
    with running_worker(queues=((QUEUE, 1),)):
        row.get_by_role("button", name="Retry now").click()
        page.wait_for_selector(".flash")
        assert "Retried: 1 of 1." in page.inner_text(".flash")
        wait_for(lambda: r.sismember(DONE_KEY, "100"), 15, "the retried job to run")
    assert page.locator("#jobs tbody tr").count() == 7
    assert r.zcard("retry") == 7


def test_quiet_a_process_from_the_busy_page(page: Any, tmp_path: Path) -> None:
    RELEASE.clear()
    with running_worker(embedded=False, queues=((QUEUE, 1),), tag="shop") as worker:
        try:
            Export.perform_bulk([[4100 + i, fmt] for i, fmt in enumerate(("csv", "xlsx", "pdf"))])
            log_in(page, "/busy")

            def running(count: int) -> bool:
                page.reload()
                return page.locator("#jobs tbody tr").count() == count

            wait_for(lambda: running(3), 10, "three running jobs on the Busy page")
            row = page.locator("#processes tbody tr", has_text=worker.identity)
            assert row.locator(".state").inner_text() == "running"
            assert "app.jobs.Export" in page.inner_text("#jobs")
            screenshot(page, "busy", tmp_path)
            row.get_by_role("button", name="Quiet").click()
            assert "Asked the process to quiet (1)" in page.inner_text(".flash")
            wait_for(worker.manager.quieted.is_set, 10, "the worker to go quiet")

            def shows_quiet() -> bool:
                page.reload()
                return bool(page.locator("#processes .state", has_text="quiet").count())

            wait_for(shows_quiet, 10, "the Busy page to show the process as quiet")
        finally:
            RELEASE.set()


def test_pause_and_enqueue_from_the_periodic_page(page: Any, r: redis.Redis,
                                                  tmp_path: Path) -> None:
    from sidequest import periodic_jobs

    periodic_jobs.clear()
    periodic_jobs.periodic(Report, every=2, args=[7], name="sales-report")
    periodic_jobs.periodic(Report, cron="30 2 * * *", args=[8], tz="Europe/Paris",
                           name="nightly-report")
    periodic_jobs.periodic(Report, cron="0 9 * * MON-FRI", args=[9], tz="America/New_York",
                           name="weekday-digest")
    try:
        with running_worker(queues=((QUEUE, 1),)):
            log_in(page, "/periodic")
            row = page.locator("#periodic tbody tr", has_text="sales-report")

            def succeeded() -> bool:
                page.reload()
                return "succeeded" in row.inner_text()

            wait_for(succeeded, 20, "a periodic run shown as succeeded")
            assert page.locator("#periodic tbody tr").count() == 3
            assert "At 02:30 every day" in page.inner_text("#periodic")
            screenshot(page, "periodic", tmp_path)
            row.get_by_role("button", name="Pause").click()
            assert "Paused sales-report." in page.inner_text(".flash")
            assert "paused" in row.inner_text()
            assert r.hget("sq:periodic:state:sales-report", "paused") == "1"
            nightly = page.locator("#periodic tbody tr", has_text="nightly-report")
            nightly.get_by_role("button", name="Enqueue now").click()
            assert "Enqueued nightly-report now" in page.inner_text(".flash")
            wait_for(lambda: r.sismember(DONE_KEY, "8"), 15, "the enqueued job to run")
    finally:
        periodic_jobs.clear()


def test_the_batches_tab_in_a_browser(page: Any, tmp_path: Path) -> None:
    from sidequest import Batch
    from sidequest.batch import update

    batch = Batch(description="nightly import")
    with batch.jobs():
        jids = [Report.perform_async(i) for i in range(40)]
    for jid in jids[:30]:
        update(batch.ancestry, str(jid), "success")
    update(batch.ancestry, str(jids[30]), "failure")
    Batch(description="welcome emails")
    log_in(page, "/batches")
    row = page.locator("#batches tbody tr", has_text="nightly import")
    assert row.locator("progress").get_attribute("value") == "30"
    assert "running" in row.inner_text() and str(jids[30]) in row.inner_text()
    screenshot(page, "batches", tmp_path)
    row.locator(f"a[href*='{jids[30]}']").first.click()
    page.wait_for_url(re.compile(r"/retries\?substr="))


class Charge(Job):
    """A job behind a concurrent limiter that the test keeps full: it is rescheduled."""

    queue = QUEUE
    name = "app.jobs.Charge"

    def perform(self, order_id: int) -> None:
        from sidequest import limiter

        with limiter.concurrent("stripe", 2, lock_timeout=30):
            pass


def test_the_limiters_tab_shows_a_full_limiter_and_its_reschedules(
    page: Any, r: redis.Redis, tmp_path: Path
) -> None:
    from sidequest import limiter

    stripe = limiter.concurrent("stripe", 2, lock_timeout=30)
    stripe.acquire()
    stripe.acquire()
    try:
        limiter.bucket("github", 5000, "hour").acquire()
        limiter.window("sms", 10, "second").acquire()
        for order in range(3):
            Charge.perform_async(order)
        with running_worker(queues=((QUEUE, 1),)):
            wait_for(lambda: r.zcard("schedule") == 3, 20, "three charges rescheduled")
        log_in(page, "/")
        page.locator("nav a", has_text="Limiters").click()
        page.wait_for_url(re.compile(r"/limiters$"))
        row = page.locator("#limiters tbody tr[data-name=stripe]")
        assert "concurrent" in row.inner_text() and "full" in row.inner_text()
        assert row.locator("td.over").inner_text() == "3"
        github = page.locator("#limiters tbody tr[data-name=github]")
        assert "5000 per 3600 s" in github.inner_text()
        assert github.locator("td.in-use").inner_text() == "1"
        assert page.locator("#limiters tbody tr").count() == 3
        screenshot(page, "limiters", tmp_path)
    finally:
        stripe.release()
        stripe.release()
    page.reload()
    assert "full" not in page.locator("#limiters tbody tr[data-name=stripe]").inner_text()


def test_the_poll_interval_can_be_chosen_from_the_keyboard(page: Any) -> None:
    # Each arrow key changed the select and reloaded the page at once: past the first
    # choice, nothing was in reach from the keyboard.
    log_in(page, "/")
    options = page.eval_on_selector_all("#poll option", "els => els.map(e => e.value)")
    start = page.eval_on_selector("#poll", "el => el.selectedIndex")
    assert len(options) >= start + 3, options
    page.focus("#poll")
    from playwright.sync_api import TimeoutError as NoNavigation

    try:
        with page.expect_navigation(timeout=1500):  # none must come: the deadline passes
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowDown")
        reloaded = True
    except NoNavigation:
        reloaded = False
    assert not reloaded, "an arrow key reloaded the page"
    assert page.eval_on_selector("#poll", "el => el.selectedIndex") == start + 2
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert f"poll={options[start + 2]}" in page.url
    with page.expect_navigation():  # with the mouse, a choice applies at once
        page.select_option("#poll", options[start])
    assert f"poll={options[start]}" in page.url
