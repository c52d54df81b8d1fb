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
from sidequest.web.rows import Row, queue_row

#: Longest queue name accepted in a URL (Redis allows more; no real queue needs it).
MAX_NAME = 512


async def queues(request: Request) -> Response:
    rows = await run_in_threadpool(summaries)
    return render.page(request, "queues.html", "Queues", queues=rows)


async def queue(request: Request) -> Response:
    name = render.exact_param(request, "name")
    if len(name) > MAX_NAME:
        return render.text("No such queue", 404)
    count = params.count(request)
    oldest = params.choice(request, "direction", ("asc", "desc"), "desc") == "asc"
    rows, size, page = await run_in_threadpool(_rows, Queue(name), params.page(request), count,
                                               oldest)
    return render.page(request, "queue.html", f"Queue {name}", name=name, jobs=rows,
                       size=size, page=page, last_page=params.last_page(size, count),
                       oldest=oldest, count=count)


def _rows(queue: Queue, page: int, count: int, oldest: bool) -> tuple[list[Row], int, int]:
    """One page of the queue as table rows (the jobs themselves are dropped here, in the
    worker thread: see rows.py), its size, and the page's number: the last page instead of
    one past the end (the queue shrank, or a hand-made URL)."""
    records, size = queue.counted_page(page, count, oldest)
    last = params.last_page(size, count)
    if page > last:
        page = last
        records, size = queue.counted_page(page, count, oldest)
    start = (page - 1) * count
    # Where each row sits in the list: from the left when newest first, from the right
    # (negative) when oldest first.
    return [queue_row(record, f"{-(start + 1 + i) if oldest else start + i}:"
                              f"{digest_of(record.raw)}")
            for i, record in enumerate(records)], size, page


async def delete_queue(request: Request) -> Response:
    queue = Queue(render.exact_param(request, "name", "/delete"))
    await run_in_threadpool(queue.clear)
    return render.back(request, "/queues", f"Deleted the queue {queue.name}.")


async def delete_job(request: Request) -> Response:
    name = render.exact_param(request, "name", "/delete_job")
    near, _, digest = render.form(request).get("job", "").partition(":")
    if not re.fullmatch(r"-?\d{1,12}", near) or not re.fullmatch(r"[0-9a-f]{32}", digest):
        return render.text("Malformed job reference", 400)
    deleted = await run_in_threadpool(Queue(name).delete_by_reference, int(near), digest)
    message = "Deleted the job." if deleted else "The job was no longer in the queue."
    # Back to the page and order the job was deleted from, not to the queue's first page.
    return render.back(request, "/queues/" + render.segment(name), message,
                       **render.place(request))
