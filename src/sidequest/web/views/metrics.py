"""The Metrics tab: per job class, runs, failures and execution time over the last 1, 8 or
24 hours, and per class an execution-time histogram and a timeline."""

from __future__ import annotations

from datetime import datetime, timezone

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest.api import metrics
from sidequest.metrics import BOUNDS_MS
from sidequest.web import charts, params, render

PERIOD_LABELS = {"1h": "1 hour", "8h": "8 hours", "24h": "24 hours"}
#: Longest class name accepted in a URL.
MAX_NAME = 512


def bucket_labels() -> list[str]:
    labels = [f"<{_ms(bound)}" for bound in BOUNDS_MS]
    return [*labels, f"≥{_ms(BOUNDS_MS[-1])}"]


def _ms(value: int) -> str:
    return f"{value / 1000:g}s" if value >= 1000 else f"{value}ms"


async def overview(request: Request) -> Response:
    period = params.choice(request, "period", metrics.PERIODS, "1h")
    substr = params.text(request, "substr")
    rows = await run_in_threadpool(metrics.summary, period, None, substr)
    # Paged: a fleet with 100,000 job classes must not make a page of megabytes.
    count, page = params.count(request), params.page(request)
    last = params.last_page(len(rows), count)
    page = min(page, last)
    shown = rows[(page - 1) * count : page * count]
    return render.page(request, "metrics.html", "Metrics", rows=shown, period=period,
                       periods=PERIOD_LABELS, substr=substr, page=page, last_page=last,
                       total=len(rows))


async def job_class(request: Request) -> Response:
    name = request.path_params["name"][:MAX_NAME]
    period = params.choice(request, "period", metrics.PERIODS, "1h")
    totals, series = await run_in_threadpool(metrics.for_class, name, period)
    step = "%H:%M"
    labels = [datetime.fromtimestamp(s.start, timezone.utc).strftime(step) for s in series]
    timeline = charts.lines(labels, [
        ("Processed", "processed", [s.processed for s in series]),
        ("Failed", "failed", [s.failed for s in series]),
    ])
    histogram = charts.bars(bucket_labels(), totals.histogram)
    return render.page(request, "metrics_class.html", name, name=name, totals=totals,
                       period=period, periods=PERIOD_LABELS, timeline=timeline,
                       histogram=histogram)
