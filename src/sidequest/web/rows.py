"""What a list's table shows of each job: a few short strings, made from the job record in the
worker thread that read it, so the record itself is dropped before the page is rendered.

A record holds its job up to three times over (the stored bytes, their text, the parsed
job); a page of fifty 2 MB jobs kept that way is hundreds of megabytes for a table that
shows 200 characters a row. A row keeps what the cells print and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidequest.api import JobRecord, SortedEntry
from sidequest.payload import OVERLIMIT_COUNT, OVERLIMIT_NAME
from sidequest.web.render import ARGS_IN_TABLE, cut, short_json


@dataclass(frozen=True)
class Row:
    """One job in a table: each text already cut to what its cell shows."""

    klass: str
    tags: list[str]
    #: The arguments as JSON, or the start of the payload when it is unreadable.
    args: str
    #: Keyword arguments as JSON ("" when there are none).
    kwargs: str
    jid: str
    parse_error: str | None
    enqueued_at: float | None
    queue: str = ""
    retry_count: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    score: float = 0.0
    #: Why the job waits, when the payload says (a limiter that was full).
    note: str = ""
    #: What an action posts to name this very entry (``SortedEntry.ref``, or a queue's
    #: "<index>:<digest>").
    ref: str = ""


def queue_row(record: JobRecord, ref: str) -> Row:
    """A queue's job, posted back as ``ref``."""
    return _row(record, ref=ref)


def set_row(entry: SortedEntry) -> Row:
    """An entry of the retry set, the schedule or the dead set."""
    message = entry.error_message
    # The queue is kept whole: its cell links to the queue, and a cut name would name another.
    return _row(entry, queue=entry.queue, retry_count=entry.retry_count,
                error_class=cut(entry.error_class) if entry.error_class is not None else None,
                error_message=cut(message) if message is not None else None,
                score=entry.score, ref=entry.ref, note=_note(entry))


def _note(entry: SortedEntry) -> str:
    """The limiter a rescheduled job waits for, as the worker recorded it."""
    item = entry.item
    count, name = item.get(OVERLIMIT_COUNT), item.get(OVERLIMIT_NAME)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return ""
    limiter = f" {cut(name)!r}" if isinstance(name, str) and name else ""
    return f"over limit{limiter}, {count} {'time' if count == 1 else 'times'}"


def _row(record: JobRecord, **extra: Any) -> Row:
    if record.parse_error:
        # The payload's first characters only (4 bytes hold any character): never its text.
        args = record.raw[:ARGS_IN_TABLE * 4].decode("utf-8", "replace")[:ARGS_IN_TABLE]
    else:
        args = short_json(record.args)
    return Row(klass=cut(record.klass), tags=[cut(tag) for tag in record.tags], args=args,
               kwargs=short_json(record.kwargs) if record.kwargs else "", jid=record.jid,
               parse_error=record.parse_error, enqueued_at=record.enqueued_at, **extra)
