"""The testing modes' batches (``sidequest.testing``), kept in this process: the steps of
lua/batch_update.lua on the same sets, in dicts, with due callbacks handed to the fake queues
(or run inline) instead of the schedule. ``batch.keep_locally`` makes ``sidequest.batch`` use
them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sidequest.batch_members import ancestry_of
from sidequest.payload import Payload, loads


@dataclass
class _Kept:
    """One batch of the testing modes: what lua/batch_update.lua keeps in Redis."""

    fields: dict[str, Any]
    total: int = 0
    sealed: bool = False
    complete: bool = False
    success: bool = False
    pending: set[str] = field(default_factory=set)
    ran: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)

    def record(self, member: str, outcome: str) -> None:
        self.ran.add(member)
        if outcome == "success":
            self.pending.discard(member)
            self.failed.discard(member)
        elif outcome == "failure":
            self.failed.add(member)

    def due(self) -> tuple[list[str], str | None]:
        """The callbacks that fire now (each once), and the outcome the batch passes up to
        its parent: "success", "complete", or None when nothing changed."""
        complete = not self.complete and len(self.ran) >= self.total
        success = not self.success and not self.pending
        self.complete, self.success = self.complete or complete, self.success or success
        fired = [self.fields[name] for name, fires in (("on_complete", complete),
                                                       ("on_success", success))
                 if fires and name in self.fields]
        return fired, "success" if success else "complete" if complete else None


class LocalBatches:
    """The testing modes' batches, in this process: the steps of lua/batch_update.lua, with
    due callbacks handed to ``deliver`` (a fake queue, or run inline) instead of the
    schedule."""

    def __init__(self, deliver: Callable[[list[Payload]], None]) -> None:
        self._deliver = deliver
        self._lock = threading.Lock()
        self._batches: dict[str, _Kept] = {}

    def create(self, bid: str, fields: dict[str, Any], parent: str | None) -> None:
        with self._lock:
            self._batches[bid] = _Kept(dict(fields))
        if parent is not None:
            self.add_member(parent, f"b:{bid}")

    def lineage(self, bid: str) -> tuple[list[str], str] | None:
        """Batch.find's answer: the batch's ancestry and description, None if unknown."""
        ancestry: list[str] = []
        with self._lock:
            while bid in self._batches and bid not in ancestry:
                ancestry.append(bid)
                bid = str(self._batches[bid].fields.get("parent") or "")
            first = self._batches.get(ancestry[0]) if ancestry else None
        return (ancestry, str(first.fields.get("description", ""))) if first else None

    def add_member(self, bid: str, member: str) -> None:
        with self._lock:
            kept = self._batches.get(bid)
            if kept is not None:
                kept.pending.add(member)
                kept.total += 1

    def seal(self, ancestry: list[str]) -> None:
        with self._lock:
            kept = self._batches.get(ancestry[0])
            if kept is not None:
                kept.sealed = True
        self.update(ancestry, "", "check")

    def update(self, ancestry: list[str], member: str, outcome: str) -> int:
        with self._lock:
            fired = self._settle(ancestry, member, outcome)
        # Outside the lock: an inline callback runs now, and may end batches of its own.
        if fired:
            self._deliver([loads(text) for text in fired])
        return len(fired)

    def _settle(self, ancestry: list[str], member: str, outcome: str) -> list[str]:
        fired: list[str] = []
        for level, bid in enumerate(ancestry):  # the job's batch, then each parent reached
            kept = self._batches.get(bid)
            if kept is None:
                break
            if member:
                kept.record(member, outcome)
            if not kept.sealed:
                break
            fires, passed = kept.due()
            fired += fires
            if level + 1 < len(ancestry):  # a child's callbacks are jobs of its parent
                self._join(ancestry[level + 1], fires)
            if passed is None:
                break
            member, outcome = f"b:{bid}", passed
        return fired

    def _join(self, bid: str, callbacks: list[str]) -> None:
        above = self._batches.get(bid)
        if above is None:
            return
        for text in callbacks:
            item = loads(text)
            if ancestry_of(item):  # not one made before callbacks joined, nor a Ruby job
                jid = str(item.get("jid", ""))
                above.total += jid not in above.pending
                above.pending.add(jid)

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()
