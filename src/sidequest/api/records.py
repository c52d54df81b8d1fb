"""Job records as the API returns them: a payload read from a queue or a sorted set.

A record keeps the raw bytes it was read from, so that acting on it (delete, retry, kill)
touches exactly that entry and nothing that changed meanwhile. Unreadable payloads are
records too, with ``item == {}`` and ``parse_error`` set, so they can be shown and deleted.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from sidequest import connection, keys
from sidequest.api import removed
from sidequest.api.lenient import shown, wire
from sidequest.errors import PayloadError
from sidequest.payload import KWARGS, Payload, decode, display_class, timestamp
from sidequest.retry import decode_backtrace
from sidequest.shown import huge_int


class JobRecord:
    """One job payload; ``queue_key`` is the list it sits in, when it sits in a queue."""

    def __init__(self, raw: bytes | str, queue_key: str | None = None) -> None:
        self.raw = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        self.queue_key = queue_key
        self.parse_error: str | None = None
        try:
            self.item: Payload = decode(self.raw)
        except PayloadError as exc:
            self.item = {}
            self.parse_error = str(exc)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.klass} jid={self.jid}>"

    @property
    def value(self) -> str:
        """The stored payload as text (bytes that are not UTF-8 replaced). Made when asked,
        not kept: a record of a 2 MB job would otherwise hold it once more."""
        return self.raw.decode("utf-8", "replace")

    @property
    def jid(self) -> str:
        return _text(self.item.get("jid", ""))

    @property
    def klass(self) -> str:
        """The class name to display (ActiveJob and display_class unwrapped)."""
        return display_class(self.item) if self.item else "(unreadable payload)"

    @property
    def args(self) -> list[Any]:
        args = self.item.get("args")
        return args if isinstance(args, list) else []

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of a job pushed by Sidequest; {} for other jobs."""
        kwargs = self.item.get(KWARGS)
        return kwargs if isinstance(kwargs, dict) else {}

    @property
    def queue(self) -> str:
        return str(self.item.get("queue", ""))

    @property
    def tags(self) -> list[str]:
        tags = self.item.get("tags")
        return [str(t) for t in tags] if isinstance(tags, list) else []

    def _time(self, field: str) -> float | None:
        return timestamp(self.item.get(field))

    @property
    def created_at(self) -> float | None:
        return self._time("created_at")

    @property
    def enqueued_at(self) -> float | None:
        return self._time("enqueued_at")

    @property
    def failed_at(self) -> float | None:
        return self._time("failed_at")

    @property
    def retried_at(self) -> float | None:
        return self._time("retried_at")

    @property
    def latency(self) -> float:
        """Seconds since the job was enqueued (0 if unknown)."""
        start = self.enqueued_at or self.created_at
        return max(0.0, time.time() - start) if start else 0.0

    @property
    def error_class(self) -> str | None:
        value = self.item.get("error_class")
        return _text(value) if value is not None else None

    @property
    def error_message(self) -> str | None:
        value = self.item.get("error_message")
        return _text(value) if value is not None else None

    @property
    def retry_count(self) -> int | None:
        value = self.item.get("retry_count")
        # One no retry policy could reach (an integer of thousands of digits, which Python
        # would refuse to write on a page) reads as unknown, as a string does.
        ok = isinstance(value, int) and not isinstance(value, bool) and value.bit_length() < 64
        return value if ok else None

    @property
    def error_backtrace(self) -> list[str]:
        return decode_backtrace(self.item.get("error_backtrace"))

    def delete(self) -> bool:
        """Remove this job from its queue; False if it was no longer there."""
        if self.queue_key is None:
            raise TypeError("this record is not in a queue; delete it through its set")
        client = connection.client()
        # wire: the key of a queue whose name is not UTF-8 holds lone surrogates (PEP 383).
        deleted = bool(client.lrem(wire(self.queue_key), 1, self.raw))  # type: ignore[arg-type]
        if deleted:
            removed.never_runs(self.item)
        return deleted

    @property
    def queue_name(self) -> str | None:
        if self.queue_key is None:
            return None
        return shown(self.queue_key[len(keys.QUEUE_PREFIX):])


def utc(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds is not None else None


def _text(value: Any) -> str:
    """A payload field shown as text. Another program may write any JSON there: an integer
    of thousands of digits, which Python refuses to write out, reads as a note of its size."""
    return huge_int(value) or str(value)
