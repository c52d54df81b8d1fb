"""Long names without a space (an 88-character dotted class path, a 100-character queue
name, a batch description, a limiter name) on a 1024 px screen (Debian's Chromium driven by
Playwright): they wrap inside their cells, and each row's last column, its buttons, stays
on screen, neither off the page nor scrolled away inside the table's box.

Skipped when Chromium or Playwright is missing, except under CI=true where that fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from sidequest import Batch, Job, connection, limiter, periodic_jobs
from sidequest.metrics import Recorder
from sidequest.web import create_app
from sidequest.web.render import segment
from sidequest.worker.periodic import register
from web_helpers import PASSWORD, browser_tab, enqueue, failed, job, process

pytestmark = pytest.mark.redis

SCREEN = {"width": 1024, "height": 768}
#: A job class as deep Java-style packages name them: 88 characters, dots and no space.
KLASS = "com.example.billing.integrations.stripe.webhooks.handlers.InvoicePaymentSucceededHandler"
#: A queue named after a tenant and a region: 100 characters without a space or a hyphen
#: (where a browser would break a line anyway).
QUEUE = "tenant_" + "acme_corporation_europe_west_" * 3 + "x" * 6
assert len(KLASS) == 88 and len(QUEUE) == 100
#: Each page, and its tables' last cells (the buttons' cell where rows have buttons).
PAGES = {
    "/queues": ["#queues tbody tr td:last-child"],
    f"/queues/{segment(QUEUE)}": ["#jobs tbody tr td:last-child"],
    "/retries": ["#jobs tbody tr td:last-child"],
    "/scheduled": ["#jobs tbody tr td:last-child"],
    "/morgue": ["#jobs tbody tr td:last-child"],
    "/busy": ["#processes tbody tr td:last-child", "#jobs tbody tr td:last-child"],
    "/periodic": ["#periodic tbody tr td:last-child"],
    "/batches": ["#batches tbody tr td:last-child"],
    "/limiters": ["#limiters tbody tr td:last-child"],
    "/metrics": ["#metrics tbody tr td:last-child"],
}


class Step(Job):
    def perform(self) -> None:
        pass


@pytest.fixture
def tab(redis_url: str) -> Iterator[Any]:
    with browser_tab(create_app(password=PASSWORD), viewport=SCREEN) as page:
        page.goto("/login")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/login" not in url)
        yield page


def _fill(r: redis.Redis) -> None:
    now = time.time()
    enqueue(r, QUEUE, job("a" * 24, klass=KLASS, queue=QUEUE))
    for zset, offset in (("retry", 3600), ("schedule", 7200), ("dead", -3600)):
        r.zadd(zset, {failed(f"{zset[0]}{0:023x}", klass=KLASS, queue=QUEUE,
                             error_class=KLASS + "Error"): now + offset})
    process(r, f"worker_{QUEUE}:4242:aaaaaaaaaaaa", busy=1, queues=[QUEUE],
            work={"t1": job("f" * 24, klass=KLASS, queue=QUEUE)})
    entry = periodic_jobs.make_entry(KLASS, cron="30 2 * * *", name="nightly_" + QUEUE,
                                     queue=QUEUE)
    register(connection.client(), entry, int(r.time()[0]))
    batch = Batch(description="import_" + QUEUE)
    with batch.jobs():
        Step.perform_async()
    recorder = Recorder()
    recorder.record(KLASS, 12.5, failed=False)
    recorder.flush()
    recorder.close()
    limiter.bucket("partner_api_" + QUEUE, 5000, "hour").acquire()


def _off_screen(tab: Any, selector: str) -> str | None:
    """Where the first row's last cell sits, if not wholly on the screen as the page opens."""
    cell = tab.locator(selector).first
    box = cell.bounding_box()
    if box is None:
        return "not shown"
    if box["x"] < 0 or box["x"] + box["width"] > SCREEN["width"]:
        return f"off screen: x {box['x']:.0f} to {box['x'] + box['width']:.0f}"
    return None


def test_long_names_wrap_and_the_last_column_stays_on_screen(tab: Any, r: redis.Redis) -> None:
    _fill(r)
    problems = []
    for path, selectors in PAGES.items():
        tab.goto(path)
        for selector in selectors:
            if why := _off_screen(tab, selector):
                problems.append(f"{path}: {selector}: {why}")
        sideways = tab.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        if sideways > 0:
            problems.append(f"{path}: the page scrolls {sideways}px sideways")
    assert not problems, "\n".join(problems)
    # The names are all there, wrapped rather than cut.
    tab.goto("/retries")
    assert KLASS in tab.inner_text("#jobs tbody tr td:nth-child(5)").replace("\n", "")
