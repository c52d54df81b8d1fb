"""Cancelling a job by its jid, wherever it is."""

from __future__ import annotations

import time

from sidequest import client, connection, keys
from sidequest.api.sets import RetrySet, ScheduledSet
from sidequest.api.stats import UNREACHABLE_ERRORS, ShardUnreachable

#: How long a cancellation is remembered (a retry may be due weeks later).
RETENTION = 30 * 86400


def cancel(jid: str) -> bool:
    """Cancel job ``jid``: if it waits in the schedule or the retry set it is removed now; a
    queued one is dropped when a worker fetches it; a running one sees ``self.cancelled()``
    become true within a second (an async job gets CancelledError). Returns True if the job
    was found and removed from a set. A dead job is left as it is (retried from the dead set
    by hand, it runs). Only Sidequest workers honour a cancellation. In
    ``sidequest.testing``'s fake mode the job leaves its fake queue (True if it was there)."""
    if not isinstance(jid, str) or not jid:
        raise ValueError(f"cancel() needs a job id (jid) string, got {jid!r}")
    if client.pushes_are_local():  # sidequest.testing's modes: the jobs are in this process
        from sidequest import testing  # noqa: PLC0415 - loaded already when a mode is on

        return testing.cancel_local(jid)
    found = False
    down: dict[str, Exception] = {}
    for shard in connection.shard_names():  # the jid does not say which shard has the job
        with connection.on_shard(shard):
            try:
                found = _cancel_here(jid) or found
            except UNREACHABLE_ERRORS as exc:  # the others still hear of it
                down[shard] = exc
    if down and not found:  # found: the job was on a shard that answered, not on these
        shard, error = next(iter(down.items()))
        advice = ("the cancellation is recorded on the shards that answered; cancel again once"
                  " it is back, in case the job is there"
                  if len(down) < len(connection.shard_names())
                  else "the job was not cancelled; cancel again once Redis is back")
        raise ShardUnreachable(shard, error, advice) from error
    return found


def cancelling(jids: list[str]) -> set[str]:
    """Which of ``jids`` have been cancelled (on a shard that answers): a running one is
    still stopping, or runs on, unaware, in a process that cannot cancel."""
    marked: set[str] = set()
    if not jids:
        return marked
    for shard in connection.shard_names():
        with connection.on_shard(shard):
            try:
                scores = connection.client().zmscore(keys.CANCELLED, jids)
            except UNREACHABLE_ERRORS:
                continue  # its jobs show as not cancelled rather than fail the page
        marked.update(jid for jid, score in zip(jids, scores, strict=True) if score is not None)
    return marked


def _cancel_here(jid: str) -> bool:
    now = time.time()
    pipe = connection.client().pipeline(transaction=True)
    pipe.zadd(keys.CANCELLED, {jid: now})
    pipe.zremrangebyscore(keys.CANCELLED, "-inf", now - RETENTION)
    pipe.execute()
    for jobset in (ScheduledSet(), RetrySet()):
        entry = jobset.find_job(jid)
        if entry is not None and entry.delete():  # its batch and status hear of it there
            return True
    return False
