"""Queues: ``queue:<name>`` lists and the ``queues`` set, read in pages."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from sidequest import connection, keys
from sidequest.api import removed
from sidequest.api.lenient import as_int, exact, key_of, replies, shown, wire
from sidequest.api.records import JobRecord

PAGE = 100


class Queue:
    """A named queue. The left end of the list holds the newest job, the right the oldest.

    ``name`` may be the bytes of a member of ``queues`` (what ``Queue.all`` passes): one
    that is not UTF-8 (another program's) is then addressed exactly, and ``name`` shows its
    odd bytes written out (``q\\xff``), printable anywhere."""

    def __init__(self, name: str | bytes = "default") -> None:
        self._exact = exact(name)

    @property
    def name(self) -> str:
        return shown(self._exact)

    @property
    def key(self) -> str:
        """Named at each use: a Queue made at import, before the first Redis client chose
        Redis Cluster's tagged names, must not keep Sidekiq's. For a name that is not UTF-8
        it holds lone surrogates (PEP 383): ``lenient.wire`` gives its bytes."""
        return keys.queue(self._exact)

    @property
    def _key(self) -> bytes:
        return key_of(keys.queue, self._exact)

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"

    @classmethod
    def all(cls) -> list[Queue]:
        return [cls(name) for name in queue_names(connection.client())]

    @property
    def size(self) -> int:
        return int(connection.client().llen(self._key))

    def __len__(self) -> int:
        return self.size

    @property
    def latency(self) -> float:
        """Seconds the oldest job has waited; 0 for an empty queue."""
        try:
            return latency_of(cast("bytes | None", connection.client().lindex(self._key, -1)))
        except redis.ResponseError:  # not a list: another program's key
            return 0.0

    def page(self, page: int = 1, count: int = 25, oldest_first: bool = False) -> list[JobRecord]:
        """One page (1-based), newest first unless ``oldest_first``."""
        return self.counted_page(page, count, oldest_first)[0]

    def counted_page(
        self, page: int = 1, count: int = 25, oldest_first: bool = False
    ) -> tuple[list[JobRecord], int]:
        """One page and the queue's size, in one round trip (a page past the end is empty)."""
        page, count = max(1, page), max(1, min(count, 1000))
        start = (page - 1) * count
        pipe = connection.client().pipeline(transaction=False)
        pipe.llen(self._key)
        if oldest_first:
            pipe.lrange(self._key, -start - count, -start - 1)
        else:
            pipe.lrange(self._key, start, start + count - 1)
        size, raws = replies(pipe)  # a key of the wrong type reads as empty
        raws = list(raws or ())
        if oldest_first:
            raws.reverse()
        return [JobRecord(raw, self.key) for raw in raws], as_int(size)

    def each(self, oldest_first: bool = False) -> Iterator[JobRecord]:
        page = 1
        while True:
            rows = self.page(page, PAGE, oldest_first)
            yield from rows
            if len(rows) < PAGE:
                return
            page += 1

    def __iter__(self) -> Iterator[JobRecord]:
        return self.each()

    def find_job(self, jid: str) -> JobRecord | None:
        """Scan the queue a page at a time for the job with this jid."""
        needle = jid.encode()
        for record in self.each():
            if needle in record.raw and record.jid == jid:
                return record
        return None

    def delete_by_reference(self, near: int, digest: str) -> bool:
        """Remove the job whose :func:`digest` is ``digest``, looked for within ``REF_WINDOW``
        places of index ``near`` (where a page showed it; jobs pushed or taken since move it
        a little). A page posts this short reference, not the job itself, which may be
        megabytes. False if it is not there any more."""
        client = connection.client()
        # The window stays on the side ``near`` counts from (the head, or the tail when
        # negative): one crossing zero would read from the other end.
        if near >= 0:
            start, end = max(0, near - REF_WINDOW), near + REF_WINDOW
        else:
            start, end = near - REF_WINDOW, min(-1, near + REF_WINDOW)
        rows = cast(list[bytes], client.lrange(self._key, start, end))
        for raw in rows:
            if digest_of(raw) == digest:
                return _deleted(client.lrem(self._key, 1, raw), raw)  # type: ignore[arg-type]
        return False

    def delete_job(self, raw: bytes | str) -> bool:
        """Remove one job by its exact stored text (what the dashboard posts back)."""
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        return _deleted(connection.client().lrem(self._key, 1, data), data)  # type: ignore[arg-type]

    def clear(self) -> int:
        """Delete the queue and forget its name, as Sidekiq's Queue#clear does; then record
        that its jobs never run (their batches, statuses and unique identities), reading
        them from where the list was set aside. How many jobs it held: 0 when none (empty,
        or deleted already)."""
        # The member is removed by its bytes; the held key is named after the shown name,
        # which redis-py can encode (a random token keeps it apart from any other).
        held = removed.set_aside(self._key, self.name,
                                 lambda pipe: pipe.srem(keys.QUEUES, wire(self._exact)))
        if held is None:
            return 0
        client, start = connection.client(), 0
        while rows := cast(list[bytes], client.lrange(held, start, start + CLEAR_PAGE - 1)):
            removed.never_run(rows, held)
            start += len(rows)
        client.unlink(held)
        return start


#: How far from where a page showed it a job is looked for when deleted by reference.
REF_WINDOW = 500
#: Jobs a clearing reads per round trip.
CLEAR_PAGE = 1000

def digest_of(raw: bytes) -> str:
    """A short fingerprint of a stored job: what a page posts back to act on it."""
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class QueueSummary:
    #: Printable: bytes that are not UTF-8 written out (``q\\xff``).
    name: str
    size: int
    latency: float
    #: The name exactly (``lenient.exact``), to address the queue: ``Queue(summary.exact)``.
    exact: str = ""


def summaries() -> list[QueueSummary]:
    """Every queue's size and latency, in two round trips however many queues there are."""
    client = connection.client()
    return _summaries(client, queue_names(client))


def summary_page(page: int, count: int) -> tuple[list[QueueSummary], int]:
    """The queues of page ``page`` (``count`` a page, by name), and how many there are: only
    that page's sizes and latencies are read."""
    client = connection.client()
    names = queue_names(client)
    start = (page - 1) * count
    return _summaries(client, names[start:start + count]), len(names)


def _summaries(client: Any, names: list[bytes]) -> list[QueueSummary]:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(key_of(keys.queue, name))
        pipe.lindex(key_of(keys.queue, name), -1)
    answers = replies(pipe)  # a key of the wrong type reads as an empty queue
    return [QueueSummary(shown(name), as_int(answers[2 * i]), latency_of(answers[2 * i + 1]),
                         exact(name))
            for i, name in enumerate(names)]


def queue_names(client: Any) -> list[bytes]:
    """The members of ``queues`` as stored (bytes), sorted; none when another program left
    a key of another type there."""
    pipe = client.pipeline(transaction=False)
    pipe.smembers(keys.QUEUES)
    (names,) = replies(pipe)
    return sorted(cast("set[bytes] | None", names) or ())


def latency_of(raw: bytes | None) -> float:
    """Latency from an oldest-job payload fetched elsewhere (e.g. in a pipeline)."""
    return JobRecord(raw).latency if raw else 0.0


def _deleted(count: Any, raw: bytes) -> bool:
    """Whether LREM removed the job; one removed records that it never runs."""
    if count:
        removed.never_runs(JobRecord(raw).item)
    return bool(count)
