"""The Dashboard tab: totals, the real-time graph (drawn by static/dashboard.js from the JSON
poll), the history graph (server-side SVG from the daily counters) and Redis facts."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sidequest.api.stats import Stats, Totals, redis_info
from sidequest.web import charts, params, render

DAY_CHOICES = (7, 30, 90, 180)
DEFAULT_POLL = 5


async def dashboard(request: Request) -> Response:
    days = params.integer(request, "days", 30, params.DAYS)
    poll = params.integer(request, "poll", DEFAULT_POLL, params.POLL_SECONDS)
    totals, history, info = await run_in_threadpool(_read, days)
    dates = sorted(history["processed"])  # newest first from the API; oldest first on a chart
    chart = charts.lines(
        [date.fromisoformat(d).strftime("%b %d") for d in dates],
        [("Processed", "processed", [history["processed"][d] for d in dates]),
         ("Failed", "failed", [history["failed"][d] for d in dates])],
    )
    return render.page(request, "dashboard.html", "Dashboard", totals=totals, days=days,
                       day_choices=DAY_CHOICES, poll=poll, poll_choices=(2, 5, 10, 30, 60),
                       history=chart, redis=info)


def _read(days: int) -> tuple[Totals, dict[str, dict[str, int]], dict[str, str]]:
    return Totals.read(), Stats.history(days), redis_info()


async def stats(request: Request) -> Response:
    """The JSON the real-time graph polls: eight Redis commands, at most once a second."""
    cache = render.settings(request).stats_cache
    body: dict[str, Any] = await run_in_threadpool(cache.get, _poll_body)
    return JSONResponse(body)


def _poll_body() -> dict[str, Any]:
    return {"sidequest": Totals.read().as_dict(), "server_utc_time": time.time()}
