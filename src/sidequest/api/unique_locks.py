"""A unique job's lock, seen and freed by hand: who holds the identity of a job with these
arguments, for how much longer, and ``release()`` for a lock left stranded (its job removed
with redis-cli, or run by a Ruby process, which frees no lock), which would otherwise drop
every identical push until ``unique_for`` ends.

    from sidequest.api import UniqueLock
    lock = UniqueLock(SyncAccount, [42])
    lock.holder, lock.ttl        # the jid holding it and the seconds left, or None, None
    lock.release()               # True if there was one
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from sidequest import connection, keys, unique
from sidequest.job import Job
from sidequest.payload import KWARGS
from sidequest.setter import unique_identity


class UniqueLock:
    """The lock an identical push of ``job`` (a Job class, or a function made a job with
    ``@job``) with ``args`` and ``kwargs`` would meet, on ``queue`` (the class's by
    default), on the shard that queue lives on."""

    def __init__(self, job: Any, args: Iterable[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, queue: str | None = None) -> None:
        cls = getattr(job, "job_class", job)
        if not (isinstance(cls, type) and issubclass(cls, Job)):
            raise TypeError(f"UniqueLock takes a job class or an @job function, got {job!r}")
        item = cls.payload_base()
        if queue is not None:
            item["queue"] = queue
        if not item.get(unique.FOR):
            raise ValueError(f"{cls.wire_name()} is not a unique job (it has no unique_for):"
                             " it takes no lock")
        args, kwargs = list(args), dict(kwargs or {})
        item["args"] = args
        if kwargs:
            item[KWARGS] = kwargs
        unique_identity(cls, item, args, kwargs)  # a unique_key hook names the identity
        unique.stamp(item)  # else the arguments, as a push of them does
        self.digest: str = item[unique.DIGEST]
        table = connection.shard_map()
        self.shard = table.shard_of(item["queue"]) if table else connection.current_shard()

    def __repr__(self) -> str:
        return f"UniqueLock({self.digest!r}, holder={self.holder!r})"

    @property
    def holder(self) -> str | None:
        """The jid of the job holding the lock, or None when no job does."""
        with connection.on_shard(self.shard):
            held = connection.client().get(keys.unique_lock(self.digest))
        return held.decode("utf-8", "replace") if isinstance(held, bytes) else held

    @property
    def ttl(self) -> float | None:
        """Seconds until the lock lapses on its own; ``math.inf`` for a lock that never will
        (written without a TTL, by hand or by another program: free it with release()),
        None when there is no lock."""
        with connection.on_shard(self.shard):
            left = int(connection.client().pttl(keys.unique_lock(self.digest)))
        if left == -1:
            return math.inf
        return left / 1000 if left >= 0 else None

    def release(self) -> bool:
        """Free the identity now, whoever holds it: an identical push is accepted again.
        The job holding it, if it still runs, is not stopped. True if there was a lock."""
        with connection.on_shard(self.shard):
            return bool(connection.client().delete(keys.unique_lock(self.digest)))
