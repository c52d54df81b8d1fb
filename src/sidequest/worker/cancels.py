"""Cancelled jobs, as this worker process knows them: the jids in ``sq:cancelled``, read
every half second (only the entries added since the last look), so that a cancelled job
never starts here and a running one sees ``self.cancelled()`` within a second."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import cast

import redis

from sidequest import connection, keys

log = logging.getLogger("sidequest")
#: Cancellations older than this are forgotten (sidequest.api.cancel trims them too).
RETENTION = 30 * 86400.0
EVERY = 0.5

#: jid -> when it was cancelled; read by the job guard and ``Job.cancelled()``.
jids: dict[str, float] = {}


def is_cancelled(jid: str) -> bool:
    return jid in jids


def confirmed(jid: str) -> bool:
    """Whether a cancellation known here still stands in Redis, asked before a job is dropped
    unrun: a dead job cancelled, then sent back to its queue by hand, lost its mark there
    (api.sets), which the watcher, reading only new entries, never hears of. A mark gone is
    forgotten here too, so that the job's ``cancelled()`` says False. Redis away: as known."""
    try:
        if connection.client().zscore(keys.CANCELLED, jid) is not None:
            return True
    except redis.RedisError:
        return True
    jids.pop(jid, None)
    return False


class CancelWatcher:
    def __init__(self, client: redis.Redis, stopping: threading.Event,
                 on_cancel: Callable[[list[str]], None]) -> None:
        self._client = client
        self._stopping = stopping
        self._on_cancel = on_cancel  # told of newly cancelled jids (to stop async ones)
        self._since = time.time() - RETENTION

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.look()
            except redis.RedisError as exc:
                log.debug("could not read cancelled jobs: %s", exc)
            self._stopping.wait(EVERY)

    def first_look(self) -> None:
        try:
            self.look()
        except redis.RedisError as exc:  # the loop tries again every half second
            log.debug("could not read cancelled jobs: %s", exc)

    def look(self) -> None:
        rows = cast(list[tuple[bytes, float]], self._client.zrangebyscore(
            keys.CANCELLED, self._since, "+inf", withscores=True))
        fresh = []
        for raw, score in rows:
            jid = raw.decode() if isinstance(raw, bytes) else str(raw)
            if jid not in jids:
                fresh.append(jid)
            jids[jid] = score
            self._since = max(self._since, score)
        if fresh:
            self._on_cancel(fresh)
        horizon = time.time() - RETENTION
        for jid in [j for j, at in list(jids.items()) if at < horizon]:
            jids.pop(jid, None)
