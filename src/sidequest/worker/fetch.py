"""Reliable fetch: jobs move atomically from their queue into this process's in-progress list.

The Fetcher knows the queue order (strict or weighted as Sidekiq does) and talks to Redis;
it keeps no state about which jobs are running, that is the Manager's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import cast

import redis

from sidequest import connection, keys
from sidequest.config import Config
from sidequest.payload import loads

#: LREM's count when a finished job leaves the in-progress list: search from the tail, where
#: the oldest jobs are (fetch pushes at the head), so the search ends after a few entries.
ACK_FROM_TAIL = -1


@dataclass(frozen=True)
class Work:
    """One fetched job: the raw payload exactly as stored, and the queue it came from."""

    queue: str
    raw: bytes
    #: Taken from the quarantine: run alone, and its death count is cleared once it ran.
    suspect: bool = False


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
        self._script = connection.script("fetch")
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
        flat = self._script(
            keys=[self.inprogress, keys.SQ_PROCESSES, *self.order()],
            args=[self.identity, count, *acks],
            client=self.client,
        )
        return [
            Work(flat[i].decode()[len(keys.QUEUE_PREFIX) :], flat[i + 1])
            for i in range(0, len(flat), 2)
        ]

    def take_suspect(self) -> Work | None:
        """Move one job from the quarantine into the in-progress list."""
        raw = cast("bytes | None", self.client.lmove(keys.QUARANTINE, self.inprogress,
                                                     "RIGHT", "LEFT"))
        if raw is None:
            return None
        try:
            queue = str(loads(raw).get("queue") or "default")
        except (ValueError, AttributeError):
            queue = "default"  # the processor sends an unreadable payload to the dead set
        return Work(queue, raw, suspect=True)

    def wait(self, timeout: float) -> Work | None:
        """Block until a job arrives in the first queue of the order, or ``timeout`` passes."""
        queue_key = self.order()[0]
        raw = cast("bytes | None", self.client.blmove(
            queue_key, self.inprogress, timeout, "RIGHT", "LEFT"))  # type: ignore[arg-type]
        if raw is None:
            return None
        return Work(queue_key[len(keys.QUEUE_PREFIX) :], raw)
