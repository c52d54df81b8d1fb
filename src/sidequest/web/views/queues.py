"""The Queues tab: every queue with size and latency, one queue's jobs page by page (newest
or oldest first), deleting a job or a whole queue."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest.api import Queue
from sidequest.api.queues import digest_of, summaries
from sidequest.web import params, render

#: Longest queue name accepted in a URL (Redis allows more; no real queue needs it).
MAX_NAME = 512


async def queues(request: Request) -> Response:
    rows = await run_in_threadpool(summaries)
    return render.page(request, "queues.html", "Queues", queues=rows)


async def queue(request: Request) -> Response:
    name = request.path_params["name"]
    if len(name) > MAX_NAME:
        return render.text("No such queue", 404)
    count = params.count(request)
    oldest = params.choice(request, "direction", ("asc", "desc"), "desc") == "asc"
    page = params.page(request)
    rows, size = await run_in_threadpool(Queue(name).counted_page, page, count, oldest)
    last = params.last_page(size, count)
    if page > last:  # past the end (the queue shrank, or a hand-made URL): show the last page
        page = last
        rows, size = await run_in_threadpool(Queue(name).counted_page, page, count, oldest)
    start = (page - 1) * count
    # Where each row sits in the list: from the left when newest first, from the right
    # (negative) when oldest first.
    refs = [f"{-(start + 1 + i) if oldest else start + i}:{digest_of(row.raw)}"
            for i, row in enumerate(rows)]
    return render.page(request, "queue.html", f"Queue {name}", name=name,
                       jobs=list(zip(rows, refs, strict=True)), size=size, page=page,
                       last_page=params.last_page(size, count), oldest=oldest, count=count)


async def delete_queue(request: Request) -> Response:
    name = request.path_params["name"]
    await run_in_threadpool(Queue(name).clear)
    return render.back(request, "/queues", f"Deleted the queue {name}.")


async def delete_job(request: Request) -> Response:
    name = request.path_params["name"]
    near, _, digest = render.form(request).get("job", "").partition(":")
    if not re.fullmatch(r"-?\d{1,12}", near) or not re.fullmatch(r"[0-9a-f]{32}", digest):
        return render.text("Malformed job reference", 400)
    deleted = await run_in_threadpool(Queue(name).delete_by_reference, int(near), digest)
    message = "Deleted the job." if deleted else "The job was no longer in the queue."
    # Back to the page and order the job was deleted from, not to the queue's first page.
    return render.back(request, "/queues/" + render.segment(name), message,
                       **render.place(request))
