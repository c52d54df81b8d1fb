"""Emptying an in-progress list back into the queues: on a graceful stop (the process's own
list) and when reaping a dead process's list.

The list is read here and the requeue script is called with every key it will touch named
(each job's queue and death counter), so that Redis servers that check a script's declared
keys (Redis Cluster, Dragonfly) accept it. Each job moves inside the script only if it is
still in the list, so a job acknowledged or recovered meanwhile is never pushed twice, and a
crash between calls leaves the rest in the list for the next reaper.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, cast

import redis

from sidequest import connection, keys
from sidequest.errors import PayloadError
from sidequest.payload import decode
from sidequest.shown import printable

#: Jobs per script call: in-progress lists hold about one process's concurrency.
BATCH = 200
#: Calls before giving up on a list that keeps growing (its owner is not dead after all).
MAX_ROUNDS = 50
#: Seconds a job's death count is kept (its deaths must come close together to make it poison).
DEATHS_TTL = 72 * 3600


def requeue_list(
    client: redis.Redis, owner: str, mode: str, *, max_deaths: int, deaths_ttl: int,
    fetched_from: Mapping[bytes, str] | None = None, listed: list[bytes] | None = None,
) -> tuple[int, int]:
    """Push ``owner``'s in-progress jobs back; ``mode`` is "reap", "gone" (a reap that does
    not wait for the lease: the owner is known dead), "stop" or "retire" (a stop that counts
    as each job's death: see lua/requeue.lua). Returns
    (requeued, poisoned), or (-1, 0) when reaping a process whose lease is back. A reap also
    takes the dead owner out of Sidekiq's process set (its hash and work hashes too).
    ``fetched_from`` maps payloads to the queue they were fetched from, for jobs that do not
    name their queue (otherwise "default", as Sidekiq's client assumes). ``listed`` gets
    the payloads read from the list, to name them in the log."""
    script = connection.script("requeue")
    head = [keys.inprogress(owner), keys.lease(owner), keys.POISON, keys.QUEUES,
            keys.SQ_PROCESSES, keys.QUARANTINE,
            # Sidekiq's entries of the owner, which a reap removes (a stop leaves them to
            # the owner's heartbeat)
            keys.PROCESSES, keys.process(owner), keys.work(owner), keys.workers_legacy(owner)]
    base: list[Any] = [mode, max_deaths, deaths_ttl, owner, max(1, max_deaths - 1)]
    requeued = poisoned = 0
    for _ in range(MAX_ROUNDS):
        raws = cast(list[bytes], client.lrange(head[0], 0, BATCH - 1))
        if listed is not None:
            listed += raws
        job_keys: list[str] = []
        args = list(base)
        for raw in raws:
            queue, jid = _queue_and_jid(raw, fetched_from or {})
            job_keys += [keys.queue(queue or "default"), keys.deaths(jid)]
            args += [raw, queue]
        moved, buried, left = (int(n) for n in script(keys=head + job_keys, args=args,
                                                    client=client))
        if moved < 0:
            return -1, 0
        requeued += moved
        poisoned += buried
        if left == 0:
            break
    return requeued, poisoned


def job_names(raws: Iterable[bytes], most: int = 5) -> str:
    """``Report jid=ab12..., ...``: the jobs a stop or a reap pushes back, for its log line
    (the job that keeps a process from stopping in time, or that was running when it died,
    is the one to look at)."""
    names = []
    for raw in raws:
        try:
            job = decode(raw)
            names.append(printable(f"{job.get('class')} jid={job.get('jid')}"))
        except PayloadError:
            names.append("an unreadable payload")
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _queue_and_jid(raw: bytes, fetched_from: Mapping[bytes, str]) -> tuple[str, str]:
    """The job's queue ("" when the payload cannot be read: poison) and the jid its death
    count is kept under (a digest of the payload when it has none)."""
    digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
    try:
        job = decode(raw)
    except PayloadError:
        return "", digest
    queue = job.get("queue") or fetched_from.get(raw) or "default"
    jid = job.get("jid")
    return str(queue), jid if isinstance(jid, str) else digest


def release_quarantine(client: redis.Redis, holder: str) -> None:
    """Give up the quarantine lock (one process at a time runs suspects) if ``holder`` has
    it: when the quarantine is empty, or for a process known dead, whose lock would
    otherwise keep the suspects waiting until it expires."""
    script = connection.script("release_lock")
    script(keys=[keys.QUARANTINE_LOCK], args=[holder], client=client)

