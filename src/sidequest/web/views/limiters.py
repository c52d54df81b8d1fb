"""The Limiters tab: every rate limiter used in the last hour, how full it is now, and how
many jobs it sent back to the schedule."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest.api.limiters import limiters as read_limiters
from sidequest.web import render


async def limiters(request: Request) -> Response:
    found = await run_in_threadpool(read_limiters)
    return render.page(request, "limiters.html", "Limiters", limiters=found)
