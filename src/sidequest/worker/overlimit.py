"""A job whose ``perform`` raised OverLimit (a rate limiter stayed full): not a failure.
It goes back to the schedule with a growing delay, without using a retry, counted as "over
limit"; after ``limiter.max_reschedules`` reschedules it goes to the dead set (a failure to
its batch, if it has one).

The original is acknowledged by the worker as a finished job after this writes the new
entry, so a crash in between may run the job twice, never lose it (the delivery guarantee:
at least once)."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from sidequest import batch, batch_members, connection, hooks, keys, limiter
from sidequest.limiter import OverLimit
from sidequest.morgue import add_dead, limits
from sidequest.payload import OVERLIMIT_COUNT as COUNT
from sidequest.payload import OVERLIMIT_NAME as NAME
from sidequest.payload import Payload, dumps, job_class
from sidequest.worker.logs import job_info

log = logging.getLogger("sidequest")
#: Longest delay between two tries, in seconds.
MAX_DELAY = 3600.0


def delay(count: int, hint: float) -> float:
    """Seconds until the next try: grows with the count (5 s, 10 s, 15 s, ...), never sooner
    than the limiter said a slot frees, with jitter so that rescheduled jobs spread out."""
    return min(MAX_DELAY, max(5.0 * count, hint) + random.uniform(0, 2.5 * count))


def reschedule(payload: Payload, queue: str, exc: OverLimit) -> None:
    count = int(payload.get(COUNT) or 0) + 1
    # With its enqueued_at (the scheduler writes a fresh one when it is due): a whole-set
    # move that sent it to its queue, and stamped that, knows it came back (api/bulk.py).
    item = {**payload, COUNT: count, NAME: exc.name}
    now = time.time()
    pipe: Any = connection.client().pipeline(transaction=True)
    pipe.incr(keys.STAT_OVERLIMIT)
    # The limiter's own count is kept beside it, on the default shard (limiter.py).
    counts: Any = pipe if connection.current_shard() == limiter.LIMITER_SHARD else (
        connection.client_for(limiter.LIMITER_SHARD).pipeline(transaction=False))
    over = keys.limiter_over(exc.name, keys.over_span(now))  # the hour is a rolling one
    counts.incr(over)
    counts.expire(over, 3600 + keys.OVER_SPAN, nx=True)
    if counts is not pipe:
        counts.execute()
    dead = count > limiter.max_reschedules
    if dead:
        _bury(pipe, item, exc, now)
    else:
        pipe.zadd(keys.SCHEDULE, {dumps(item): now + delay(count, exc.retry_in)})
        # A job line (class and jid as fields, in JSON too), as its start and done are.
        job_info(log, f"over limit ({exc.name}); rescheduled, try {count}",
                 {"class": job_class(payload), "jid": payload.get("jid")})
    pipe.execute()
    if dead:
        # As for a job out of retries: its unique lock is freed, its stored status says dead,
        # and the application's death handlers hear of it.
        hooks.report_death(item, exc)


def _bury(pipe: Any, item: Payload, exc: OverLimit, now: float) -> None:
    """Queue on ``pipe`` the job's death: the dead set, and a failure to its batch."""
    item.update({"error_class": "OverLimit", "error_message": str(exc), "failed_at": now})
    kept = item.get("dead", True) is not False  # `dead = False`: dropped, as after retries
    if kept:
        # The published limits (this worker's, unless another started since): not the defaults.
        add_dead(pipe, dumps(item), now, *limits(connection.client()))
    ancestry = batch_members.ancestry_of(item)
    if ancestry:  # a failure, as a job out of retries is: its batch stops waiting for it
        batch.queue_update(pipe, ancestry, str(item.get("jid", "")), "failure")
    log.warning("%s %s: over limit %d times (%s); %s", job_class(item), item.get("jid"),
                item[COUNT] - 1, exc.name,
                "moved to the dead set" if kept else "discarded (dead = False)")
