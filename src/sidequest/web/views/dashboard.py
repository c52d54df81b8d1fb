"""The Dashboard tab: totals, the real-time graph (drawn by static/dashboard.js from the JSON
poll), the history graph (server-side SVG from the daily counters) and Redis facts."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sidequest import connection
from sidequest.api.stats import Stats, Totals, each_shard, redis_info, summed
from sidequest.web import charts, params, render

DAY_CHOICES = (7, 30, 90, 180)
DEFAULT_POLL = 5
SHARD_COLUMNS = (("processed", "Processed"), ("failed", "Failed"), ("busy", "Busy"),
                 ("processes", "Processes"), ("enqueued", "Enqueued"), ("retries", "Retries"),
                 ("scheduled", "Scheduled"), ("dead", "Dead"))


async def dashboard(request: Request) -> Response:
    days = params.integer(request, "days", 30, params.DAYS)
    poll = params.integer(request, "poll", DEFAULT_POLL, params.POLL_SECONDS)
    totals, history, info = await run_in_threadpool(_read, days)
    rows = await run_in_threadpool(each_shard, Totals.read) if _sharded() else {}
    dates = sorted(history["processed"])  # newest first from the API; oldest first on a chart
    chart = charts.lines(
        [date.fromisoformat(d).strftime("%b %d") for d in dates],
        [("Processed", "processed", [history["processed"][d] for d in dates]),
         ("Failed", "failed", [history["failed"][d] for d in dates])],
    )
    return render.page(request, "dashboard.html", "Dashboard", totals=totals, days=days,
                       day_choices=DAY_CHOICES, poll=poll, poll_choices=(2, 5, 10, 30, 60),
                       history=chart, redis=info, **_shard_context(request, rows))


def _sharded() -> bool:
    return len(connection.shard_names()) > 1


def _shard_context(request: Request, rows: dict[str, Totals]) -> dict[str, Any]:
    """The Shards table of the overview: each shard's totals, a link to its dashboard, and
    the sum of all."""
    base = str(request.scope.get("sidequest.base", render.root(request)))
    return {
        "shard_columns": SHARD_COLUMNS,
        "shard_rows": [(name, base + ("" if name == "default" else f"/shards/{name}") + "/",
                        totals.as_dict()) for name, totals in rows.items()],
        "shard_total": summed(t.as_dict() for t in rows.values()),
    }


def _read(days: int) -> tuple[Totals, dict[str, dict[str, int]], dict[str, str]]:
    return Totals.read(), Stats.history(days), redis_info()


async def stats(request: Request) -> Response:
    """The JSON the real-time graph polls: eight Redis commands, at most once a second."""
    cache = render.settings(request).stats_cache_of(
        str(request.scope.get("sidequest.shard", "default")))
    body: dict[str, Any] = await run_in_threadpool(cache.get, _poll_body)
    return JSONResponse(body)


def _poll_body() -> dict[str, Any]:
    return {"sidequest": Totals.read().as_dict(), "server_utc_time": time.time()}
