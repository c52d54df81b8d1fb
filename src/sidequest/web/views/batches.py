"""The Batches tab: the batches, newest first and a page at a time, with their progress,
callbacks' state and links to the jobs that failed; or one batch looked up by its id."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest.api.batches import MAX_LISTED, BatchPage, BatchStatus, page_of
from sidequest.batch_members import KEEP, KEEP_AFTER_SUCCESS
from sidequest.web import params, render

#: What a batch id looks like (ours are 24 hex digits): anything else is not looked up, so
#: that "abc:pending" cannot read one of a batch's own sets as if it were a batch.
BID = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def batches(request: Request) -> Response:
    bid = params.text(request, "bid")
    if bid:
        return await _lookup(request, bid)
    count, page = params.count(request, MAX_LISTED), params.page(request)
    listing = await run_in_threadpool(page_of, page, count)
    last = params.last_page(listing.total, count)
    if page > last:  # past the end (batches expired, or a hand-made URL): the last page
        page = last
        listing = await run_in_threadpool(page_of, page, count)
    return render.page(request, "batches.html", "Batches", batches=listing.batches, bid="",
                       heading=_heading(listing, page, count), page=page, last_page=last,
                       missing=None)


async def _lookup(request: Request, bid: str) -> Response:
    """The batch ``bid`` alone; or the page saying there is none, and why there may not be."""
    found = await run_in_threadpool(BatchStatus, bid) if BID.fullmatch(bid) else None
    if found is not None and found.exists:
        return render.page(request, "batches.html", f"Batch {bid}", batches=[found], bid=bid,
                           heading=f"batch {bid}", page=1, last_page=1, missing=None)
    if found is None:
        missing = (f"No batch has the id {bid!r}: a batch id is letters, digits, - and _ (the"
                   " code under a batch's description).")
    else:
        missing = (f"No batch {bid} here: no batch has that id on this shard, or it has expired"
                   f" (a batch is kept {_days(KEEP)} days, {_days(KEEP_AFTER_SUCCESS)} once it"
                   " has succeeded).")
    return render.page(request, "batches.html", f"Batch {bid}", batches=[], bid=bid,
                       heading="", page=1, last_page=1, missing=missing)


def _heading(listing: BatchPage, page: int, count: int) -> str:
    """How many batches there are, and which of them the page shows when not all: "the newest
    100 of 1,234" reads as a part, where "100" alone read as the total."""
    if listing.total <= count:
        return f"{len(listing.batches):,}"
    if page == 1:
        return f"the newest {count:,} of {listing.total:,}"
    first = (page - 1) * count + 1
    return f"{first:,} to {min(page * count, listing.total):,} of {listing.total:,}, newest first"


def _days(seconds: int) -> int:
    return seconds // 86400
