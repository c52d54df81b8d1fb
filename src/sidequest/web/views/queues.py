"""The Queues tab: every queue with size and latency (and a mark on a queue holding jobs that
no running process fetches from), one queue's jobs page by page (newest or oldest first),
deleting a job or a whole queue."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest.api import Process, ProcessSet, Queue
from sidequest.api.queues import QueueSummary, digest_of, summary_page
from sidequest.web import params, render
from sidequest.web.rows import Row, queue_row

#: Longest queue name accepted in a URL (Redis allows more; no real queue needs it).
MAX_NAME = 8192
#: The marks on a queue whose jobs nothing fetches: none of the running processes has it
#: among its queues, or only quiet ones do (a quiet process fetches nothing).
UNSERVED = "no process serves it"
ONLY_QUIET = "only quiet processes"
#: Queues a page.
PER_PAGE = 100


async def queues(request: Request) -> Response:
    page, count = params.page(request), params.count(request, PER_PAGE)
    rows, total, unserved_marks = await run_in_threadpool(_read, page, count)
    last = params.last_page(total, count)
    if page > last:  # queues removed since, or a hand-made URL
        page = last
        rows, total, unserved_marks = await run_in_threadpool(_read, page, count)
    return render.page(request, "queues.html", "Queues", queues=rows, unserved=unserved_marks,
                       total=total, page=page, last_page=last)


def _read(page: int, count: int) -> tuple[list[QueueSummary], int, dict[str, str]]:
    """A page of the queues (however many there are, one per tenant say, the page stays one
    page long), how many there are, and the process set read once (this shard's: each
    shard's processes register on their own Redis) to mark those no running process
    serves."""
    rows, total = summary_page(page, count)
    # Not pruned here: a GET changes nothing, and an expired entry reads as no process.
    return rows, total, unserved(rows, ProcessSet(clean=False).processes())


def unserved(rows: list[QueueSummary], processes: list[Process]) -> dict[str, str]:
    """Each queue holding jobs that no running process fetches from, by its exact name, with
    its mark; as ``sidequest status`` tells, where quiet processes serve nothing."""
    fetching = {name for p in processes if not p.stopping for name in p.queues}
    quiet = {name for p in processes if p.stopping for name in p.queues}
    marks = {}
    for row in rows:
        name = row.exact or row.name
        if row.size and name not in fetching:
            marks[name] = ONLY_QUIET if name in quiet else UNSERVED
    return marks


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
    held = await run_in_threadpool(queue.clear)
    jobs = f"{held:,} job" if held == 1 else f"{held:,} jobs"
    return render.back(request, "/queues", f"Deleted the queue {queue.name} and its {jobs}."
                       if held else
                       f"The queue {queue.name} held no jobs (empty, or deleted already by"
                       " someone else); it is gone from the list.")


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
