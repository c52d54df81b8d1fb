"""The whole-set buttons (Retry all, Kill all, Add to queue for all): every entry of a
sorted set moved, a page per round trip, once per press, whatever else acts on the set
meanwhile (workers failing jobs back into it, another operator, a double submit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sidequest import connection
from sidequest.api import removed
from sidequest.payload import Payload, now, timestamp


class SortedEntry(Protocol):
    """An entry of a sorted set, as api.sets gives it (named here, not imported: the set
    classes call this module)."""

    raw: bytes
    item: Payload

    @property
    def jid(self) -> str: ...


class JobSet(Protocol):
    """The schedule, retry or dead set, as api.sets gives it."""

    held: int
    _move: Any

    @property
    def name(self) -> str: ...

    def _entry(self, raw: bytes, score: float) -> SortedEntry: ...

    def _forget_cancels(self, client: Any, entries: list[Any], how: str) -> None: ...

    def _queue_move(self, client: Any, entry: Any, how: str) -> Any: ...

    def _counted(self, result: Any) -> bool: ...

#: Entries read per round trip.
PAGE = 100
#: Reads of the whole set one press may make: another while the last one moved something.
PASSES = 4


@dataclass
class _Seen:
    """What one press has done so far, across its passes."""

    began: float
    moved: set[str] = field(default_factory=set)  # jids
    stayed: set[bytes] = field(default_factory=set)  # entries left (held, unreadable)

    def fresh(self, entry: SortedEntry) -> bool:
        """To move: not left once already, nor a job moved already that came back."""
        if entry.raw in self.stayed:
            return False
        return entry.jid not in self.moved or not _came_back(entry, self.began)


def move_all(jobset: JobSet, how: str) -> int:
    """Move every entry of ``jobset``, lowest score first ("retry", "queue" or "dead");
    how many moved. Entries that move out shift the rest down; entries that stay
    (unreadable, or held by a unique lock) are stepped over, and so is a job moved once
    already that failed again and came back while the loop ran: one press, one run. What
    another actor removes meanwhile (a second operator, a double submit) shifts the rest
    down unseen, and the pages after it step over live entries: so the set is read again
    until a read moves nothing (up to PASSES reads; the last one, over what stays, is
    the price of knowing nothing was left)."""
    jobset.held = 0
    seen = _Seen(began=now())
    client = connection.client()
    done = 0
    for _ in range(PASSES):
        moved = _one_pass(jobset, client, how, seen)
        done += moved
        if not moved:
            break
    return done


def _one_pass(jobset: JobSet, client: Any, how: str, seen: _Seen) -> int:
    """One read of the set from its start; how many moved."""
    done = offset = 0
    while True:
        rows = client.zrange(jobset.name, offset, offset + PAGE - 1, withscores=True)
        if not rows:
            return done
        entries = [jobset._entry(raw, score) for raw, score in cast(Any, rows)]
        fresh = [entry for entry in entries if seen.fresh(entry)]
        offset += len(entries) - len(fresh)
        outcome = _move_page(jobset, client, how, fresh)
        moved = [entry for entry in fresh if jobset._counted(outcome.get(id(entry)))]
        if how == "dead":  # killed: what kill() records, for the page's moved ones at once
            removed.ended([entry.item for entry in moved], "dead")
        seen.moved.update(entry.jid for entry in moved if entry.jid)
        # Not moved: unreadable (never sent: None), or held (-1); 0 is gone, moved by another.
        stays = [entry for entry in fresh if outcome.get(id(entry)) in (None, -1)]
        seen.stayed.update(entry.raw for entry in stays)
        done += len(moved)
        offset += len(stays)


def _move_page(jobset: JobSet, client: Any, how: str, fresh: list[SortedEntry]) -> dict[int, Any]:
    """The move script's answer for each entry sent (by id), in one round trip."""
    jobset._forget_cancels(client, fresh, how)
    pipe = client.pipeline(transaction=False)
    connection.prepare(jobset._move, pipe)  # a cluster pipeline cannot load it
    sent = [entry for entry in fresh if jobset._queue_move(pipe, entry, how)]
    results = pipe.execute() if len(pipe) else []
    return {id(entry): result for entry, result in zip(sent, results, strict=True)}


def _came_back(entry: SortedEntry, began: float) -> bool:
    """Whether an entry of a jid this press moved already is that move's own job, back in
    the set (it failed again at once, or a full limiter put it back): not one of the
    entries the action was pressed for. The move stamped ``enqueued_at`` with this clock,
    and the job keeps it through a failure and a limiter's reschedule, so no worker's clock
    (which may run behind) takes part. Entries that share a jid from before (a job
    scheduled twice) are each moved."""
    stamp = timestamp(entry.item.get("enqueued_at"))
    return stamp is not None and stamp >= began
