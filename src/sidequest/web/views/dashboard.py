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
from sidequest.api.stats import (
    ShardReads,
    Stats,
    Totals,
    each_reachable_shard,
    redis_info,
    redis_risks,
    summed,
)
from sidequest.web import charts, params, render
from sidequest.web.settings import TimedCache

DAY_CHOICES = (7, 30, 90, 180)
DEFAULT_POLL = 5
SHARD_COLUMNS = (("processed", "Processed"), ("failed", "Failed"), ("busy", "Busy"),
                 ("processes", "Processes"), ("enqueued", "Enqueued"), ("retries", "Retries"),
                 ("scheduled", "Scheduled"), ("dead", "Dead"))


async def dashboard(request: Request) -> Response:
    days = params.integer(request, "days", 30, params.DAYS)
    poll = params.integer(request, "poll", DEFAULT_POLL, params.POLL_SECONDS)
    totals, history, info = await run_in_threadpool(_read, days)
    # The page polls at once: it must get these numbers (or newer), not older ones cached by
    # an earlier poll, which would undo on the tiles an action the user has just taken.
    _poll_cache(request).put(_body(totals))
    # A shard that is down is marked in the Shards table, not a 503 for every shard's page.
    rows = await run_in_threadpool(each_reachable_shard, Totals.read) if _sharded() else None
    dates = sorted(history["processed"])  # newest first from the API; oldest first on a chart
    chart = charts.lines(
        [date.fromisoformat(d).strftime("%b %d") for d in dates],
        [("Processed", "processed", [history["processed"][d] for d in dates]),
         ("Failed", "failed", [history["failed"][d] for d in dates])],
    )
    return render.page(request, "dashboard.html", "Dashboard", totals=totals, days=days,
                       day_choices=DAY_CHOICES, poll=poll, poll_choices=(2, 5, 10, 30, 60),
                       history=chart, redis=info, risks=redis_risks(info),
                       **_shard_context(request, rows))


def _sharded() -> bool:
    return len(connection.shard_names()) > 1


def _shard_context(request: Request, reads: ShardReads[Totals] | None) -> dict[str, Any]:
    """The Shards table of the overview: each shard's totals (None for one that could not be
    read), a link to its dashboard, the shards that are down, and the sum of the others."""
    if reads is None:
        return {"shard_columns": SHARD_COLUMNS, "shard_rows": [], "shard_down": {},
                "shard_total": {}}
    base = str(request.scope.get("sidequest.base", render.root(request)))
    values = reads.values
    return {
        "shard_columns": SHARD_COLUMNS,
        "shard_rows": [(name, base + ("" if name == "default" else f"/shards/{name}") + "/",
                        values[name].as_dict() if name in values else None)
                       for name in connection.shard_names()],
        "shard_down": reads.down,
        "shard_total": summed(t.as_dict() for t in values.values()),
    }


def _read(days: int) -> tuple[Totals, dict[str, dict[str, int]], dict[str, str]]:
    return Totals.read(), Stats.history(days), redis_info()


async def stats(request: Request) -> Response:
    """The JSON the real-time graph polls: ten Redis commands and one script call in two round
    trips, at most once a second."""
    body: dict[str, Any] = await run_in_threadpool(_poll_cache(request).get,
                                                   lambda: _body(Totals.read()))
    return JSONResponse(body)


def _poll_cache(request: Request) -> TimedCache:
    return render.settings(request).stats_cache_of(
        str(request.scope.get("sidequest.shard", "default")))


def _body(totals: Totals) -> dict[str, Any]:
    return {"sidequest": totals.as_dict(), "server_utc_time": time.time()}
