"""What a job taken out of Redis by hand (the dashboard, the API) leaves behind.

A worker's guards record a job's end: its unique identity goes back, its stored status says
how it ended, its batch counts it. A job deleted from a queue or a set, or killed before it
ran, never reaches a worker, so the hand that removed it records that end instead; without
it a batch would wait for the job for good, and a status would say "queued" or "retrying"
for a job that will never run.
"""

from __future__ import annotations

from sidequest import batch, status, unique
from sidequest.payload import Payload


def never_runs(raw: bytes, item: Payload) -> None:
    """``raw`` was deleted from a queue, the schedule or the retry set: cancelled, to its
    status; done to its batch, a failure if it failed before (as a retry deleted)."""
    unique.release_raw(raw)
    if status.wanted(item):
        status.save(item, "cancelled")
    batch.dropped(item)


def killed(raw: bytes, item: Payload) -> None:
    """``raw`` was moved to the dead set by hand: dead, to its status; a failure, to its
    batch (recorded again for a retry, which changes nothing)."""
    unique.release_raw(raw)
    if status.wanted(item):
        status.save(item, "dead")
    batch.dropped(item, failed=True)
