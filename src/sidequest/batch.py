"""Batches: a group of jobs with callbacks when all of them have run once, or all succeeded.

    batch = sidequest.Batch(description="import 42", on_success=(ImportDone, [42]),
                            on_complete=(ImportReport, [42]))
    with batch.jobs():
        for row in rows:
            ImportRow.perform_async(row)      # joins the batch

A job of the batch adds more jobs to it with ``with self.batch.jobs(): ...``. A batch may be
a child of another (``parent=``): the parent's callbacks wait for the child's.

Each member is recorded in sets, never counters: ``pending`` (not yet succeeded), ``ran``
(ran at least once, succeeded or failed) and ``failed`` (failed, retrying or dead). A job
that runs twice after a crash, or is retried, changes nothing twice. When the batch is sealed
(its ``with batch.jobs()`` block ended) and every member has run once, ``on_complete`` is
pushed; when none is pending, ``on_success``. Both pushes are made by one Lua step with a
``HSETNX`` guard (lua/batch_update.lua), so each callback is enqueued exactly once whoever
gets there first. Callbacks go through the schedule, due at once, so a Ruby process's
scheduler may move them too.

Payload key: ``sq_batch``, the list of the job's batch id and its ancestors' (never Sidekiq
Pro's ``bid``, whose batches are kept elsewhere).
"""

from __future__ import annotations

import contextlib
import contextvars
import secrets
import time
from collections.abc import Iterator
from typing import Any

from sidequest import connection, items, keys
from sidequest.payload import Payload, dumps

PAYLOAD_KEY = "sq_batch"
#: Seconds a batch is kept after its success, and at most from its creation.
KEEP_AFTER_SUCCESS = 3 * 86400
KEEP = 30 * 86400

#: The batch a ``with batch.jobs():`` block is filling in this thread or task.
_current: contextvars.ContextVar[Batch | None] = contextvars.ContextVar("sidequest_batch",
                                                                        default=None)
Callback = tuple[Any, list[Any]]


class Batch:
    shard: str

    def __init__(self, description: str = "", on_success: Callback | None = None,
                 on_complete: Callback | None = None, parent: Batch | None = None,
                 shard: str | None = None) -> None:
        # With several Redis servers, a batch and its jobs (and callbacks) live on one: the
        # given shard, else the parent's, else the current one (the job's own in a job).
        self.shard = shard or (parent.shard if parent else connection.current_shard())
        if parent is not None and parent.shard != self.shard:
            raise ValueError(f"a child batch lives on its parent's shard ({parent.shard!r}),"
                             f" not {self.shard!r}; leave shard= out")
        self.bid = secrets.token_hex(12)
        self.description = str(description)
        self.ancestry: list[str] = [self.bid, *(parent.ancestry if parent else [])]
        fields: dict[str, Any] = {"bid": self.bid, "description": self.description,
                                  "created": repr(time.time()), "total": 0, "sealed": 0,
                                  "parent": parent.bid if parent else ""}
        for name, callback in (("on_success", on_success), ("on_complete", on_complete)):
            if callback is not None:
                fields[name] = _callback_payload(callback, self.bid, self.shard)
        with connection.on_shard(self.shard):  # its client, and on a cluster its keys' tag
            pipe: Any = connection.client().pipeline(transaction=True)
            pipe.hset(keys.batch(self.bid), mapping=fields)
            pipe.expire(keys.batch(self.bid), KEEP)
            pipe.zadd(keys.BATCHES, {self.bid: time.time()})
            pipe.zremrangebyscore(keys.BATCHES, "-inf", time.time() - KEEP)
            if parent is not None:  # the parent waits for this batch like for one of its jobs
                add_member(pipe, parent.bid, f"b:{self.bid}")
            pipe.execute()

    @classmethod
    def open(cls, ancestry: list[str]) -> Batch:
        """An existing batch, to add jobs to it (``self.batch`` in a job)."""
        batch = cls.__new__(cls)
        batch.bid, batch.ancestry, batch.description = ancestry[0], list(ancestry), ""
        batch.shard = connection.current_shard()  # a job's batch is on the job's shard
        return batch

    @contextlib.contextmanager
    def jobs(self) -> Iterator[Batch]:
        """Every job pushed in the block (in this thread or task) joins the batch; at the end
        the batch is sealed: its callbacks may fire once its jobs are done."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)
        with connection.on_shard(self.shard):
            target = connection.client()
            target.hset(keys.batch(self.bid), "sealed", 1)
            update(self.ancestry, "", "check", target)  # all done already, or an empty batch


def current() -> Batch | None:
    return _current.get()


def add_member(pipe: Any, bid: str, member: str) -> None:
    """Queue on ``pipe``: ``member`` joins batch ``bid`` (before its job is written)."""
    pipe.sadd(keys.batch_part(bid, "pending"), member)
    pipe.hincrby(keys.batch(bid), "total", 1)
    for part in ("pending", "ran", "failed"):
        pipe.expire(keys.batch_part(bid, part), KEEP)


def update(ancestry: list[str], member: str, outcome: str,
           target: Any = None) -> int:
    """Record a member's outcome ("success", "failure", or "check" only); pushes the
    callbacks that are due. Returns how many were pushed."""
    batch_keys = [keys.SCHEDULE]
    for bid in ancestry:
        batch_keys += [keys.batch(bid), keys.batch_part(bid, "pending"),
                       keys.batch_part(bid, "ran"), keys.batch_part(bid, "failed")]
    script = connection.script("batch_update")
    connection.prepare(script, target)
    return int(script(keys=batch_keys, args=[member, outcome, time.time(), KEEP_AFTER_SUCCESS],
                      client=target or connection.client()))


def ancestry_of(payload: Payload) -> list[str] | None:
    value = payload.get(PAYLOAD_KEY)
    if isinstance(value, list) and value and all(isinstance(b, str) for b in value):
        return value
    return None


def _callback_payload(callback: Callback, bid: str, shard: str) -> str:
    target, args = callback
    job_class: Any = getattr(target, "job_class", target)  # a @job function's class
    item = items.normalize({**job_class.payload_base(), "args": list(args),
                            "sq_batch_callback": bid})
    table = connection.shard_map()
    if table is not None and table.shard_of(item["queue"]) != shard:
        # Its shard's scheduler pushes the callback into a queue of that same Redis.
        raise ValueError(f"batch callback {item['class']} goes to queue {item['queue']!r} on "
                         f"shard {table.shard_of(item['queue'])!r}, but the batch is kept on "
                         f"shard {shard!r}; route the callback's queue to the batch's shard")
    return dumps(item)
