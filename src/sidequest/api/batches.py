"""Reading batches: ``BatchStatus(bid)`` and the recent batches for the dashboard."""

from __future__ import annotations

from typing import Any, cast

from sidequest import connection, keys
from sidequest.api.lenient import as_float, as_int

#: Batches listed on the dashboard, the newest first.
MAX_LISTED = 100


class BatchStatus:
    """A snapshot of batch ``bid``, read when created; ``exists`` is False for an unknown or
    expired batch."""

    def __init__(self, bid: str) -> None:
        self.bid = bid
        pipe: Any = connection.client().pipeline(transaction=False)
        pipe.hgetall(keys.batch(bid))
        pipe.scard(keys.batch_part(bid, "pending"))
        pipe.smembers(keys.batch_part(bid, "failed"))
        raw, pending, failed = pipe.execute()
        fields = {k.decode(): v.decode("utf-8", "replace")
                  for k, v in cast(dict[bytes, bytes], raw).items()}
        self.exists = bool(fields)
        self.description = fields.get("description", "")
        self.created = as_float(fields.get("created"), None)
        self.parent = fields.get("parent") or None
        self.total = as_int(fields.get("total"))
        self.pending = as_int(pending)
        #: Jobs that failed and have not succeeded since (retrying or dead).
        self.failed_jids = sorted(m.decode() for m in failed if not m.startswith(b"b:"))
        self.failures = len(self.failed_jids)
        self.complete = "complete_at" in fields
        self.success = "success_at" in fields

    @property
    def done(self) -> int:
        return max(0, self.total - self.pending)

    def __repr__(self) -> str:
        return (f"BatchStatus({self.bid!r}, total={self.total}, pending={self.pending}, "
                f"failures={self.failures}, complete={self.complete}, success={self.success})")


def recent(limit: int = MAX_LISTED) -> list[BatchStatus]:
    bids = connection.client().zrevrange(keys.BATCHES, 0, limit - 1)
    found = [BatchStatus(b.decode()) for b in cast(list[bytes], bids)]
    return [status for status in found if status.exists]
