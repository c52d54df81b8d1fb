"""What becomes of a job that failed, apart from the write itself (the processor's, in one
transaction with the acknowledgement): its batch and status records, whether it goes to the
dead set, the log line that says what comes next, and the dead-set entry of a payload that
cannot be read."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sidequest import batch, batch_members, hooks, retry, status
from sidequest.errors import PayloadError
from sidequest.job import Job
from sidequest.payload import Payload, dumps, job_class, loads, new_jid
from sidequest.worker.clock import now
from sidequest.worker.fetch import Work
from sidequest.worker.logs import job_info

log = logging.getLogger("sidequest")
#: The class of a dead-set entry holding a payload that is JSON but no job (its one argument).
UNREADABLE_CLASS = "(unreadable payload)"


def record(pipe: Any, failed: Payload, exc: BaseException, retrying: bool) -> None:
    """A failure's record in its batch (a failure, retrying or not) and, once it will not
    run again, its stored status: in the failure's own transaction, so that an outage as
    the job ends delays them rather than loses them."""
    ancestry = batch_members.ancestry_of(failed)
    if ancestry:
        batch.queue_update(pipe, ancestry, str(failed.get("jid", "")), "failure")
    if not retrying and status.wanted(failed):
        status.write(pipe, failed, "dead", **status.failure(exc))


def to_morgue(decision: retry.Decision, cls: type[Job] | None, exc: BaseException) -> bool:
    """Whether a job out of retries goes to the dead set: unless ``dead = False`` or its
    class's ``retries_exhausted`` says "discard" (then it is marked discarded)."""
    if decision.action != "exhausted":
        return False
    failed = decision.job
    to_morgue = failed.get("dead", True) is not False
    if cls is not None:
        answer = safely(lambda: cls.retries_exhausted(failed, exc), "retries_exhausted",
                         failed)
        if answer == retry.DISCARD:
            to_morgue = False
    if not to_morgue:
        failed["discarded_at"] = now()
    return to_morgue


def say_next(decision: retry.Decision, failed: Payload, to_morgue: bool) -> None:
    """The line after a ``fail``: whether the job runs again, and when."""
    if log.isEnabledFor(logging.INFO):
        job_info(log, _next_step(decision, failed, to_morgue),
                 {"class": job_class(failed), "jid": failed.get("jid")})


def _next_step(decision: retry.Decision, failed: Payload, to_morgue: bool) -> str:
    if decision.action == "retry":
        wait = max(0.0, decision.at - now())
        when = (f"{wait:.0f} s" if wait < 120 else f"{wait / 60:.0f} min" if wait < 7200
                else f"{wait / 3600:.1f} h")
        return f"retry {int(failed.get('retry_count', 0)) + 1} in {when}"
    if decision.action == "off":
        return "not retried (retry = False): dropped"
    if decision.action == "discard":
        return "not retried: discarded (retry_in said so)"
    if to_morgue:
        return "no retry left: moved to the dead set"
    return "no retry left: discarded (dead = False, or retries_exhausted said so)"


def safely(call: Callable[[], Any], hook: str, job: Payload) -> Any:
    """Run one of the job class's hooks; one that raises is logged, reported and ignored."""
    try:
        return call()
    except Exception as exc:
        log.exception("the job's %s hook raised; ignoring it", hook)
        hooks.report_error(exc, {"context": f"Error calling {hook}", "job": job})
        return None


def dead_entry(work: Work, exc: PayloadError) -> bytes | str:
    """What the dead set keeps of an unreadable payload: byte for byte, as Sidekiq keeps text
    that is not JSON (its Web UI shows such entries), unless it is JSON but not an object (a
    list, null, a number), which broke Sidekiq's Dead page and API: that is kept whole as
    the one argument of a job-shaped entry."""
    try:  # as decode() reads it: strict UTF-8
        text = work.raw.decode("utf-8") if isinstance(work.raw, bytes) else work.raw
        if isinstance(loads(text), dict):
            return work.raw
    except (UnicodeDecodeError, ValueError, RecursionError):
        return work.raw
    # retry 0: a Retry from a Dead page that fails again comes back here, not dropped.
    return dumps({"class": UNREADABLE_CLASS, "args": [text], "queue": work.queue,
                  "jid": new_jid(), "retry": 0, "created_at": now(), "failed_at": now(),
                  "error_class": retry.error_class(exc), "error_message": str(exc)})
