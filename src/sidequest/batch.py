"""Batches: a group of jobs with callbacks when all of them have run once, or all succeeded.

    batch = sidequest.Batch(description="import 42", on_success=(ImportDone, [42]),
                            on_complete=(ImportReport, [42]))
    with batch.jobs():
        for row in rows:
            ImportRow.perform_async(row)      # joins the batch

A job of the batch adds more jobs to it with ``with self.batch.jobs(): ...``; that block
never seals the batch (the block that made it may still be filling it), and the job, pending
until it ends, keeps the batch from finishing before the jobs it added. A batch may be
a child of another (``parent=``): the child's callbacks are jobs of the parent (members from
when they are pushed), so the parent's callbacks wait for them.

Each member is recorded in sets, never counters: ``pending`` (not yet succeeded), ``ran``
(ran at least once, succeeded or failed) and ``failed`` (failed, retrying or dead). A job
that runs twice after a crash, or is retried, changes nothing twice. When the batch is sealed
(its ``with batch.jobs()`` block ended) and every member has run once, ``on_complete`` is
pushed; when none is pending, ``on_success``. Both pushes are made by one Lua step with a
``HSETNX`` guard (lua/batch_update.lua), so each callback is enqueued exactly once whoever
gets there first. Callbacks go through the schedule, due at once, so a Ruby process's
scheduler may move them too.

A member that will never run, because it expired or was cancelled first, is done without a
failure (``dropped``): the batch can still succeed. One that dies without running to its end
(a limiter kept it waiting too often) is a failure, as a job out of retries is.

In the testing modes (``sidequest.testing``) batches live in this process
(``batch_local.LocalBatches``): the same sets in dicts, and due callbacks go to the fake
queues.

Payload key: ``sq_batch``, the list of the job's batch id and its ancestors' (never Sidekiq
Pro's ``bid``, whose batches are kept elsewhere).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import redis

from sidequest import batch_callbacks, connection, joblog, keys, sending
from sidequest.batch_callbacks import callback_payload
from sidequest.batch_members import KEEP, KEEP_AFTER_SUCCESS, ancestry_of, member_commands
from sidequest.batch_unreachable import unreachable
from sidequest.payload import Payload
from sidequest.wire import Command

if TYPE_CHECKING:
    from sidequest.batch_local import LocalBatches

log = logging.getLogger("sidequest")

#: The payload field of a job's batch ancestry (defined where callbacks are built).
PAYLOAD_KEY = batch_callbacks.PAYLOAD_KEY
#: Derived bids a child made in a job tries, each after an earlier run sealed the one before.
CHILD_PROBES = 20
#: Parents followed at most by Batch.find (a loop of parents written by hand stops there).
MAX_DEPTH = 100

#: The batch a ``with batch.jobs():`` block is filling in this thread or task.
_current: contextvars.ContextVar[Batch | None] = contextvars.ContextVar("sidequest_batch",
                                                                        default=None)
#: Set by the testing modes (``keep_locally``): batches are kept in this process, not in Redis.
_local: LocalBatches | None = None
Callback = tuple[Any, list[Any]]


class Batch:
    shard: str
    #: Made by ``open`` (a job's own batch, to add jobs to), not by ``Batch(...)``.
    _opened = False
    #: The jid of the job that opened it (``self.batch``) or made it as a child, and the
    #: count of the child batches that run made of it.
    _opener: str | None = None
    _made: itertools.count[int]

    def __init__(self, description: str = "", on_success: Callback | None = None,
                 on_complete: Callback | None = None, parent: Batch | None = None,
                 shard: str | None = None) -> None:
        if parent is not None and not isinstance(parent, Batch):
            raise TypeError(f"parent must be the parent Batch object, got {parent!r}: pass "
                            "the Batch itself (in one of its jobs, self.batch), not its bid")
        # With several Redis servers, a batch and its jobs (and callbacks) live on one: the
        # given shard, else the parent's, else the current one (the job's own in a job).
        self.shard = shard or (parent.shard if parent else connection.current_shard())
        if parent is not None and parent.shard != self.shard:
            raise ValueError(f"a child batch lives on its parent's shard ({parent.shard!r}),"
                             f" not {self.shard!r}; leave shard= out")
        if parent is not None and not (parent._still_there() and parent._open_to_children()):
            parent = None  # an expired or ended batch: this one stands alone (a warning says so)
        self.description = str(description)
        callbacks = {"on_success": on_success, "on_complete": on_complete}
        if parent is not None and _local is None and self._derived(parent, callbacks):
            return
        fields = self._fields(secrets.token_hex(12), parent, callbacks)
        if _local is not None:
            _local.create(self.bid, fields, parent.bid if parent else None)
        else:
            self._write(fields, parent)

    def _derived(self, parent: Batch, callbacks: dict[str, Callback | None]) -> bool:
        """Made or found under a bid derived from the job that makes it, if one does."""
        for bid in parent._child_bids():
            if self._make_or_find(self._fields(bid, parent, callbacks), parent):
                # Its own children derive their bids too: a grandchild a run again makes
                # is found as this one is.
                self._opener, self._made = parent._opener, itertools.count()
                return True
        return False

    def _fields(self, bid: str, parent: Batch | None,
                callbacks: dict[str, Callback | None]) -> dict[str, Any]:
        """Take ``bid``; the fields of the batch's record."""
        self.bid = bid
        self.ancestry: list[str] = [bid, *(parent.ancestry if parent else [])]
        fields: dict[str, Any] = {"bid": bid, "description": self.description,
                                  "created": repr(time.time()), "total": 0, "sealed": 0,
                                  "parent": parent.bid if parent else ""}
        for name, callback in callbacks.items():
            if callback is not None:
                fields[name] = callback_payload(name, callback, bid, self.shard,
                                                parent.ancestry if parent else None)
        return fields

    def _child_bids(self) -> Iterator[str]:
        """For a child made in a job (``Batch(parent=self.batch)``): bids derived from the
        job's jid and how many children this run made of this batch before, the same in a
        run again; the next of them when an earlier run sealed the one before."""
        if self._opener is None:
            return
        made = next(self._made)  # one step, safe from two threads of the job
        for probe in range(CHILD_PROBES):
            key = f"{self._opener}/{self.bid}/{made}/{probe}"
            yield hashlib.sha256(key.encode()).hexdigest()[:24]

    def _make_or_find(self, fields: dict[str, Any], parent: Batch) -> bool:
        """Make the child a job derives (lua/batch_child.lua); True also when an earlier run
        of the job made it and did not seal it: this run fills it on. False when that one is
        sealed: it ends on its own, and this run makes a child of its own."""
        made = [keys.batch(self.bid), keys.BATCHES,
                *(keys.batch_part(parent.bid, part) for part in ("pending", "ran", "failed")),
                keys.batch(parent.bid)]
        pairs = [str(item) for pair in fields.items() for item in pair]
        with connection.on_shard(self.shard), unreachable(self.shard, (
                "the batch was not created (nothing was written): retry later"), (
                "the batch may have been created: a retry of this job finds it (its bid comes"
                " from the job's)")):
            found = connection.script("batch_child")(
                keys=made, args=[KEEP, repr(time.time()), self.bid, *pairs],
                client=connection.client())
        return (found.decode() if isinstance(found, bytes) else str(found)) != "sealed"

    def _write(self, fields: dict[str, Any], parent: Batch | None) -> None:
        """Sent once, all or nothing (sending.py): a transaction redis-py resent after a
        lost reply counted the child twice in its parent's total, which then never ended."""
        with connection.on_shard(self.shard):  # its client, and on a cluster its keys' tag
            now, record = time.time(), keys.batch(self.bid)
            commands: list[Command] = [
                ("HSET", record, *(item for pair in fields.items() for item in pair)),
                ("EXPIRE", record, KEEP), ("ZADD", keys.BATCHES, now, self.bid),
                ("ZREMRANGEBYSCORE", keys.BATCHES, "-inf", now - KEEP)]
            if parent is None:
                maybe = (f"the batch may have been created (bid {self.bid}), though nothing"
                         " waits for it: retry later")
            else:  # the parent waits for this batch like for one of its jobs
                commands += member_commands(parent.bid, f"b:{self.bid}")
                maybe = (f"the batch may have been created (bid {self.bid}), and its parent"
                         " would wait for it: once Redis answers, seal it with an empty block,"
                         f" `with sidequest.Batch.find({self.bid!r}).jobs(): pass`")
            with unreachable(self.shard, "the batch was not created (nothing was written):"
                              " retry later", maybe):
                sending.send(connection.client(), commands, atomic=True)

    @classmethod
    def find(cls, bid: str, shard: str | None = None) -> Batch:
        """The batch ``bid``, to finish filling it from a process other than the one that
        made it (which died inside its block, say): a ``with batch.jobs():`` block on it
        adds the jobs pushed in it and, at its end, seals the batch, as a block on the
        object ``Batch(...)`` returned does. LookupError when no such batch is kept (never
        made, expired, or on another shard: pass ``shard=``)."""
        if not isinstance(bid, str):
            raise TypeError(f"Batch.find takes the batch's bid (a string, batch.bid), got"
                            f" {bid!r}")
        batch = cls.__new__(cls)
        batch.bid, batch.shard = bid, shard or connection.current_shard()
        found = _local.lineage(bid) if _local is not None else batch._lineage()
        if found is None:
            raise LookupError(f"no batch {bid!r} on shard {batch.shard!r}: never made, or"
                              f" expired (a batch is kept {KEEP // 86400} days,"
                              f" {KEEP_AFTER_SUCCESS // 86400} once it has succeeded)")
        batch.ancestry, batch.description = found
        if _local is None:
            batch._warn_if_ended()
        return batch

    def _warn_if_ended(self) -> None:
        """A found batch whose callbacks fired already: what a block adds to it runs, but
        fires none of them again. Said, rather than let a late block look like it works."""
        with connection.on_shard(self.shard), unreachable(self.shard, "no batch was read"):
            read = connection.client().hmget(keys.batch(self.bid), [
                "complete_at", "on_complete", "success_at", "on_success", "sealed"])
        # complete_at is set with no on_complete too; on_success may still come after it.
        fired = [name for name, at, callback in (("on_complete", read[0], read[1]),
                                                 ("on_success", read[2], read[3]))
                 if at is not None and callback is not None]
        if fired:
            log.warning("batch %s: its %s fired already and will not again: the jobs a block"
                        " on it adds run and count in it, but for a new round make a new Batch",
                        self.bid, " and ".join(fired))
        elif read[4] not in (None, b"0", "0") and not self._held_by_this_job():
            log.warning("batch %s is sealed already: nothing holds it open while a block on it"
                        " runs, so its callbacks may fire before the jobs the block adds have"
                        " run. Add jobs to a running batch from one of its jobs (self.batch)",
                        self.bid)

    def _held_by_this_job(self) -> bool:
        """Whether the job running here is a member still pending: it holds the batch open
        (a job that finds its own batch by bid, rather than through self.batch)."""
        running = joblog.current.get()
        if running is None:
            return False
        with connection.on_shard(self.shard), unreachable(self.shard, "no batch was read"):
            return bool(connection.client().sismember(
                keys.batch_part(self.bid, "pending"), running[0]))

    def _lineage(self) -> tuple[list[str], str] | None:
        """The batch's ancestry (its bid, then each parent still kept) and description, read
        from Redis; None when the batch is not there."""
        ancestry: list[str] = []
        description = ""
        with connection.on_shard(self.shard), unreachable(self.shard, "no batch was read"):
            client = connection.client()
            bid = self.bid
            while bid and bid not in ancestry and len(ancestry) < MAX_DEPTH:
                raw = cast(list[bytes | None],
                           client.hmget(keys.batch(bid), ["bid", "parent", "description"]))
                if raw[0] is None:
                    break
                if not ancestry:
                    description = raw[2].decode("utf-8", "replace") if raw[2] else ""
                ancestry.append(bid)
                bid = raw[1].decode("utf-8", "replace") if raw[1] else ""
        return (ancestry, description) if ancestry else None

    @classmethod
    def open(cls, ancestry: list[str], opener: str | None = None) -> Batch:
        """An existing batch, to add jobs to it (``self.batch`` in a job, whose jid is
        ``opener``). Its blocks never seal it: only the block of the process that made the
        batch knows when it is filled."""
        batch = cls.__new__(cls)
        batch.bid, batch.ancestry, batch.description = ancestry[0], list(ancestry), ""
        batch.shard = connection.current_shard()  # a job's batch is on the job's shard
        batch._opened = True
        batch._opener, batch._made = opener, itertools.count()
        return batch

    @contextlib.contextmanager
    def jobs(self) -> Iterator[Batch]:
        """Every job pushed in the block (in this thread or task) joins the batch; at the end
        the batch is sealed: its callbacks may fire once its jobs are done. A block that
        raises leaves it unsealed: its callbacks must not claim a batch that was not filled.
        A block on an opened batch (``self.batch``) only adds jobs and seals nothing: its job
        is a member still pending, so the batch cannot end before the job and what it added
        do, and the job's own end checks the batch."""
        joining = self if self._still_there() else None
        token = _current.set(joining)
        try:
            yield self
        except BaseException:
            if joining is not None:
                log.warning("a `with batch.jobs()` block of batch %s raised: the jobs pushed"
                            " in it run and count in the batch; %s", self.bid,
                            self._unsealed_note())
            raise
        finally:
            _current.reset(token)
        if not self._opened:
            self._seal()

    def _unsealed_note(self) -> str:
        if self._opened:
            return "the batch is sealed by the block that made it, not by this one"
        return ("a batch no earlier block sealed stays unsealed (no callbacks) until a later"
                " block on it ends")

    def _still_there(self) -> bool:
        """Whether an opened batch still exists. One that expired (a job retried by hand days
        after its batch ended) is left alone: what is added to it runs outside any batch,
        where joining it would make a batch record that never expires, of a batch whose
        callbacks are long past."""
        if not self._opened or _local is not None:  # the testing modes skip unknown batches
            return True
        with connection.on_shard(self.shard), unreachable(self.shard, (
                "nothing was added to the batch")):
            if connection.client().exists(keys.batch(self.bid)):
                return True
        log.warning("batch %s no longer exists (a batch is kept %d days, %d once it has "
                    "succeeded): what is added to it runs outside any batch", self.bid,
                    KEEP // 86400, KEEP_AFTER_SUCCESS // 86400)
        return False

    def _open_to_children(self) -> bool:
        """Whether a child may still join: not once this batch has succeeded, since it fires
        nothing again, and joining would leave it "succeeded" with a member pending."""
        if _local is not None:
            return True
        with connection.on_shard(self.shard), unreachable(self.shard, "no batch was made"):
            if connection.client().hget(keys.batch(self.bid), "success_at") is None:
                return True
        log.warning("batch %s has succeeded, and its callbacks fired: the child batch made"
                    " now stands alone, with callbacks of its own", self.bid)
        return False

    def _seal(self) -> None:
        if _local is not None:
            _local.seal(self.ancestry)
            return
        with connection.on_shard(self.shard), unreachable(self.shard, (
                "the jobs pushed in the block are enqueued, but the batch could not be sealed:"
                " its callbacks wait until a later `with batch.jobs():` block on it ends (an"
                " empty one will do) once Redis answers")):
            # Sealing is in the script: on a batch that expired it writes nothing, where an
            # HSET would make a record that never expires.
            update(self.ancestry, "", "seal", connection.client())


def current() -> Batch | None:
    return _current.get()


@contextlib.contextmanager
def outside() -> Iterator[None]:
    """No batch is being filled in the block: a job run inline (the testing modes) inside a
    ``with batch.jobs():`` pushes what a worker would, not more members of that batch."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def update(ancestry: list[str], member: str, outcome: str,
           target: Any = None) -> int:
    """Record a member's outcome ("success", "failure"; or "check" only, or "seal" the
    batch and check); pushes the callbacks that are due. Returns how many were pushed."""
    if _local is not None:
        return _local.update(ancestry, member, outcome)
    return int(queue_update(target or connection.client(), ancestry, member, outcome))


def queue_update(pipe: Any, ancestry: list[str], member: str, outcome: str) -> Any:
    """``update`` on ``pipe``: a client answers with the callbacks pushed, a pipeline queues
    it (to record an outcome in the same transaction as what caused it)."""
    batch_keys = [keys.SCHEDULE]
    for bid in ancestry:
        batch_keys += [keys.batch(bid), keys.batch_part(bid, "pending"),
                       keys.batch_part(bid, "ran"), keys.batch_part(bid, "failed")]
    script = connection.script("batch_update")
    connection.prepare(script, pipe)
    return script(keys=batch_keys, args=[member, outcome, time.time(), KEEP_AFTER_SUCCESS],
                  client=pipe)


def dropped_outcome(payload: Payload) -> str:
    """What a member that will never run again (expired, cancelled or deleted before it
    started) is to its batch: done, not a failure, unless it failed before (a retry
    dropped): recording a success would clear that failure, and on_success fire."""
    return "failure" if "failed_at" in payload else "success"


def dropped(payload: Payload) -> None:
    """Record ``dropped_outcome`` now: without it the batch would wait for the member
    forever. A Redis error is logged: the job is gone either way, and its caller must not
    fail."""
    ancestry = ancestry_of(payload)
    if not ancestry:
        return
    try:
        update(ancestry, str(payload.get("jid", "")), dropped_outcome(payload))
    except redis.RedisError as exc:
        log.warning("batch %s: could not record that job %s was dropped (%s); the batch waits"
                    " for it", ancestry[0], payload.get("jid"), exc)


def keep_locally(batches: LocalBatches | None) -> LocalBatches | None:
    """Keep batches in ``batches`` (the testing modes), or in Redis again with None; returns
    what was used before."""
    global _local
    previous, _local = _local, batches
    return previous
