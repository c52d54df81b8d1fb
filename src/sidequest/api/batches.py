"""Reading batches: ``BatchStatus(bid)``, and the batches for the dashboard a page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sidequest import client, connection, keys
from sidequest.api.lenient import as_float, as_int, outages_raised, replies
from sidequest.api.stats import first_found
from sidequest.batch import Batch

#: Batches on one page of the dashboard's list, the newest first.
MAX_LISTED = 100
#: Why ``BatchStatus`` refuses to read in the testing modes.
IN_TESTING = ("BatchStatus reads the batch a worker keeps in Redis, and testing.fake() and "
              "testing.inline() keep batches in this process instead (nothing is written to "
              "Redis): in a test, check a batch by its callbacks (fake: once its jobs are "
              "drained, its on_success and on_complete jobs are queued, as ImportDone.jobs; "
              "inline: they have run), or test BatchStatus end to end against Redis with a "
              "worker, outside the testing modes")


class BatchStatus:
    """A snapshot of batch ``bid`` (or of a ``Batch``), read when created; ``exists`` is False
    for an unknown or expired batch."""

    def __init__(self, bid: str | Batch) -> None:
        if client.pushes_are_local():  # else exists=False, or ShardUnreachable, from Redis
            raise RuntimeError(IN_TESTING)
        # A Batch is read where it lives (its shard); a bid on the current shard, then on the
        # others (as JobStatus does): a bid does not say which shard made it.
        shards = [bid.shard] if isinstance(bid, Batch) else None
        bid = _bid_of(bid)
        answers = first_found(lambda shard: _read_on(shard, bid), lambda found: bool(found[0]),
                              [None, None, None], lambda _: "the batch's status was not read:"
                              " ask again once it answers", shards)
        self._read(bid, *answers)

    @classmethod
    def _from_replies(cls, bid: str, raw: Any, pending: Any, failed: Any) -> BatchStatus:
        """The status from the replies to ``_ask``'s commands, sent in a pipeline shared
        with other batches (one round trip for a page of them)."""
        status = cls.__new__(cls)
        status._read(bid, raw, pending, failed)
        return status

    def _read(self, bid: str, raw: Any, pending: Any, failed: Any) -> None:
        self.bid = bid
        fields = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                  for k, v in cast(dict[bytes, bytes], raw or {}).items()}
        self.exists = bool(fields)
        self.description = fields.get("description", "")
        self.created = as_float(fields.get("created"), None)
        self.parent = fields.get("parent") or None
        self.total = as_int(fields.get("total"))
        self.pending = as_int(pending)
        #: Jobs that failed and have not succeeded since (retrying or dead).
        self.failed_jids = sorted(m.decode("utf-8", "replace") for m in failed or ()
                                  if not m.startswith(b"b:"))
        self.failures = len(self.failed_jids)
        self.complete = "complete_at" in fields
        self.success = "success_at" in fields
        #: Whether the block that made the batch has ended: until then (forever, if it
        #: raised) no callback fires, whatever its jobs do.
        self.sealed = fields.get("sealed") == "1"

    @property
    def done(self) -> int:
        return max(0, self.total - self.pending)

    def __repr__(self) -> str:
        if not self.exists:  # not an empty batch: none by that id (mistyped, or expired)
            return f"BatchStatus({self.bid!r}, exists=False)"
        return (f"BatchStatus({self.bid!r}, total={self.total}, pending={self.pending}, "
                f"failures={self.failures}, sealed={self.sealed}, complete={self.complete}, "
                f"success={self.success})")


def _read_on(shard: str, bid: str) -> list[Any]:
    with connection.on_shard(shard):  # its client, and on a cluster its keys' tag
        pipe: Any = connection.client().pipeline(transaction=False)
        _ask(pipe, bid)
        return list(replies(pipe))  # a key of the wrong type reads as unknown: no batch


def _bid_of(batch: object) -> str:
    """The id to read: a bid, or a Batch's. Anything else would read as no batch (exists
    False) and hide the slip, so it is refused."""
    if isinstance(batch, Batch):
        return batch.bid
    if isinstance(batch, str):
        return batch
    raise TypeError(f"BatchStatus takes a batch id (str) or a Batch, got "
                    f"{type(batch).__name__}: {batch!r}")


def _ask(pipe: Any, bid: str) -> None:
    pipe.hgetall(keys.batch(bid))
    pipe.scard(keys.batch_part(bid, "pending"))
    pipe.smembers(keys.batch_part(bid, "failed"))


@dataclass(frozen=True)
class BatchPage:
    """One page of the batches, the newest first, and how many the index holds."""

    batches: list[BatchStatus]
    #: Entries in the batches' index (its ZCARD): it keeps a batch 30 days, its record may
    #: expire sooner (3 days after it succeeded), so some of them may list as nothing.
    total: int


def page_of(page: int, per_page: int = MAX_LISTED) -> BatchPage:
    """Page ``page`` (from 1) of ``per_page`` batches, in two round trips whatever its size:
    the index's size and the page's ids, then every batch's record at once."""
    start = (page - 1) * per_page
    pipe: Any = connection.client().pipeline(transaction=False)
    pipe.zcard(keys.BATCHES)
    pipe.zrevrange(keys.BATCHES, start, start + per_page - 1)
    total, bids = replies(pipe)  # a key of the wrong type reads as no batches
    return BatchPage(_statuses([b.decode("utf-8", "replace") for b in bids or ()]),
                     as_int(total))


def _statuses(bids: list[str]) -> list[BatchStatus]:
    """The batches of ``bids`` that still exist, read in one pipeline. A key another tool
    left of the wrong type counts as no batch, rather than failing the whole page."""
    if not bids:
        return []
    pipe: Any = connection.client().pipeline(transaction=False)
    for bid in bids:
        _ask(pipe, bid)
    replies = outages_raised(pipe.execute(raise_on_error=False))
    found = []
    for index, bid in enumerate(bids):
        raw, pending, failed = replies[3 * index: 3 * index + 3]
        if not any(isinstance(reply, Exception) for reply in (raw, pending, failed)):
            found.append(BatchStatus._from_replies(bid, raw, pending, failed))
    return [status for status in found if status.exists]


def recent(limit: int = MAX_LISTED) -> list[BatchStatus]:
    """The newest ``limit`` batches that still exist."""
    return page_of(1, limit).batches
