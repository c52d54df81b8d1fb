"""Reliable fetch: jobs move atomically from their queue into this process's in-progress list.

The Fetcher knows the queue order (strict or weighted as Sidekiq does) and talks to Redis;
it keeps no state about which jobs are running, that is the Manager's.
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import redis

from sidequest import connection, keys
from sidequest.config import Config
from sidequest.payload import loads

if TYPE_CHECKING:
    from sidequest.worker.waker import Waker

#: LREM's count when a finished job leaves the in-progress list: search from the tail, where
#: the oldest jobs are (fetch pushes at the head), so the search ends after a few entries.
ACK_FROM_TAIL = -1
#: Quarantined jobs read per call while looking for one this process runs, and at most how
#: many such reads one look makes (a pool whose processes are all gone may leave
#: thousands): the next look reads on where it stopped.
SUSPECT_PAGE = 200
SUSPECT_PAGES = 10


@dataclass(frozen=True)
class Work:
    """One fetched job: the raw payload exactly as stored, and the queue it came from."""

    queue: str
    raw: bytes
    #: Taken from the quarantine: run alone, and its death count is cleared once it ran.
    suspect: bool = False


def _queue_of(raw: bytes) -> str:
    try:
        return str(loads(raw).get("queue") or "default")
    except (ValueError, AttributeError):
        return "default"  # the processor sends an unreadable payload to the dead set


class Fetcher:
    """Builds the queue order for each fetch and runs the fetch/ack script."""

    def __init__(self, config: Config, identity: str, client: redis.Redis) -> None:
        self.client = client
        self.identity = identity
        self.inprogress = keys.inprogress(identity)
        self.strict = config.strict
        self._strict_keys = [keys.queue(name) for name in config.queue_names]
        # Weighted: each queue appears once per weight (at least once), as Sidekiq builds it.
        self._weighted = [
            keys.queue(name) for name, weight in config.queues for _ in range(max(weight, 1))
        ]
        self._weight = collections.Counter(self._weighted)  # per queue key
        self._script = connection.script("fetch")
        self._served = frozenset(config.queue_names)
        self._suspect_page = 0  # where has_suspects reads on (pages from the right end)
        self._rng = random.Random()

    def order(self) -> list[str]:
        """Queue keys to try, first non-empty wins; shuffled by weight unless strict."""
        if self.strict:
            return self._strict_keys
        shuffled = self._weighted[:]
        self._rng.shuffle(shuffled)
        return list(dict.fromkeys(shuffled))

    def fetch(self, count: int, acks: list[bytes]) -> list[Work]:
        """Acknowledge ``acks`` and move up to ``count`` jobs into the in-progress list."""
        if count <= 0 and not acks:
            return []
        order = self.order()
        flat = self._script(
            keys=[self.inprogress, keys.SQ_PROCESSES, *order],
            args=[self.identity, count, self._plan(order, count), *acks],
            client=self.client,
        )
        return [
            Work(flat[i].decode()[len(keys.QUEUE_PREFIX) :], flat[i + 1])
            for i in range(0, len(flat), 2)
        ]

    def _plan(self, order: list[str], count: int) -> bytes:
        """Weighted queues: the queue each job of the batch tries first (its position in
        ``order``, one byte each), drawn by weight as Sidekiq draws one per fetch. Strict
        order, one queue, or more queues than a byte counts: b"", the batch takes from the
        first queue of ``order`` that has jobs."""
        if self.strict or count <= 0 or not 1 < len(order) < 256:
            return b""
        weights = [self._weight[key] for key in order]
        return bytes(self._rng.choices(range(1, len(order) + 1), weights, k=count))

    def wait_several(self, waker: Waker, timeout: float, poll: float) -> Work | None:
        """Several queues: sleep until Redis says one of them changed (or ``timeout``
        passes), then look again; poll for ``poll`` seconds where Redis cannot tell."""
        if not waker.arm():
            return self.wait(poll)  # polling fallback: a blocking wait on the first queue
        works = self.fetch(1, [])  # a push may have landed before tracking began
        if not works and waker.wait(timeout):
            works = self.fetch(1, [])
        if works:
            waker.disarm()
        return works[0] if works else None

    def take_suspect(self) -> Work | None:
        """Move one job of a queue this process serves from the quarantine into the
        in-progress list; None when it holds none. Another pool's (a queue not served here)
        goes back to the quarantine's other end: taken here, it failed as unknown."""
        for _ in range(max(1, int(self.client.llen(keys.QUARANTINE)))):
            raw = cast("bytes | None", self.client.lmove(keys.QUARANTINE, self.inprogress,
                                                         "RIGHT", "LEFT"))
            if raw is None:
                return None
            if self.runs(raw):
                return Work(_queue_of(raw), raw, suspect=True)
            pipe = self.client.pipeline(transaction=True)  # both or neither: never lost
            pipe.lrem(self.inprogress, 1, raw)  # type: ignore[arg-type]
            pipe.lpush(keys.QUARANTINE, raw)
            pipe.execute()
        return None

    def has_suspects(self) -> bool:
        """Whether the quarantine holds a job this process can run: read from the end
        ``take_suspect`` takes from, a page at a time, to the first; past SUSPECT_PAGES
        pages of other pools' jobs, the next call goes on from there."""
        pages = 0
        while pages < SUSPECT_PAGES:
            end = -1 - self._suspect_page * SUSPECT_PAGE
            page = cast("list[bytes]", self.client.lrange(
                keys.QUARANTINE, end - SUSPECT_PAGE + 1, end))
            if any(self.runs(raw) for raw in page):
                return True
            if len(page) < SUSPECT_PAGE:  # the whole list read: from the end next time
                shrunk = not page and self._suspect_page > 0
                self._suspect_page = 0
                if not shrunk:
                    return False
                continue  # it shrank below the page reached: read it from its end, now
            self._suspect_page += 1
            pages += 1
        return False  # the next call reads on from here

    def runs(self, raw: bytes) -> bool:
        """A job of a queue this process serves, whatever its class, as a fetch from that
        queue takes it: a class no process loads any more (renamed by a deploy) fails as
        unknown, into the retry set, rather than wait unseen in the quarantine. An unreadable
        one too (the processor sends it to the dead set, whoever takes it)."""
        try:
            queue = str(loads(raw).get("queue") or "default")
        except (ValueError, AttributeError):
            return True
        return queue in self._served

    def wait(self, timeout: float) -> Work | None:
        """Block until a job arrives in the first queue of the order, or ``timeout`` passes."""
        queue_key = self.order()[0]
        raw = cast("bytes | None", self.client.blmove(
            queue_key, self.inprogress, timeout, "RIGHT", "LEFT"))  # type: ignore[arg-type]
        if raw is None:
            return None
        return Work(queue_key[len(keys.QUEUE_PREFIX) :], raw)
