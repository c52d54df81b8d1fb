"""The Batches tab: recent batches with their progress, callbacks' state and links to the
jobs that failed."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest.api.batches import recent
from sidequest.web import render


async def batches(request: Request) -> Response:
    found = await run_in_threadpool(recent)
    return render.page(request, "batches.html", "Batches", batches=found)
