"""A job that ran past its timeout and did not stop (stuck in C code, or a blocked event
loop): its thread cannot be taken back, so one failure is recorded for it (which takes it out
of the in-progress list, to retry like any failure) before the process retires."""

from __future__ import annotations

import logging
import sys
from types import TracebackType

from sidequest import metrics, middleware, registry
from sidequest.errors import JobTimeout, PayloadError
from sidequest.payload import Payload, decode, job_class, normalized
from sidequest.worker.async_jobs import AsyncJobs
from sidequest.worker.fetch import Work
from sidequest.worker.logs import log_failure, thread_id
from sidequest.worker.processor import Processor
from sidequest.worker.timeouts import stack_of

log = logging.getLogger("sidequest")


def error(stack: TracebackType | None = None) -> JobTimeout:
    failure = JobTimeout("the job ran past its timeout and did not stop; its process retired")
    return failure.with_traceback(stack)


def _ident_of(tid: str) -> int | None:
    return next((ident for ident in sys._current_frames() if thread_id(ident) == tid), None)


def fail(jid: str, running: dict[str, Work], processor: Processor,
         async_jobs: AsyncJobs) -> None:
    """Record the failure of the job ``jid``: a thread's (``running``: thread id -> job,
    from which it is removed) or the event loop's."""
    for tid, work in list(running.items()):
        try:
            job = normalized(decode(work.raw), work.queue)
        except PayloadError:
            continue
        if job.get("jid") == jid:
            running.pop(tid, None)
            # Unless its thread has just ended and recorded the outcome itself; else, when
            # the call it is stuck in returns, the thread records nothing more.
            if processor.settle(work):
                # Counted here (its thread, if its call ever returns, counts nothing more),
                # in the process's totals and in the metrics the chain would have timed;
                # first, before the thread could move on to another job.
                processor.state.finished(tid, failed=True)
                failure = error(stack_of(_ident_of(tid)))
                metrics.given_up(job, work.queue, middleware.server, failure)
                _log(failure, job, tid)
                processor.failed(work, job, failure, registry.find(job.get("class")))
    culprit = _culprit(jid, async_jobs)
    given_up = async_jobs.give_up(culprit) if culprit is not None else None
    if given_up is not None:
        work, _, cls = given_up
        # A payload of its own, as for a thread's: the loop may still be marking the live
        # one (with_ack) while the failure is written from here.
        # The culprit's code holds a stuck loop; on a loop that runs (a job that ignores its
        # cancellation) the thread is elsewhere, at whatever runs now: no stack then.
        runner = async_jobs.runner
        stack = stack_of(runner.thread_ident) if runner.stuck else None
        failure = error(stack) if culprit == jid else blocked_error().with_traceback(stack)
        job = normalized(decode(work.raw), work.queue)
        metrics.given_up(job, work.queue, middleware.server, failure)
        _log(failure, job, f"async-{job.get('jid')}")  # as its start line names it
        processor.failed(work, job, failure, cls)


def _log(failure: BaseException, job: Payload, tid: str) -> None:
    """The job's ``fail`` line, as any failed job gets (its thread never writes one): a log
    pipeline keyed on the jid sees it end, at the line it was stuck on."""
    log_failure(log, failure, {"tid": tid, "class": job_class(job), "jid": job.get("jid")})


def _culprit(jid: str, async_jobs: AsyncJobs) -> str | None:
    """The async job to fail for ``jid``'s overrun: itself, unless the event loop is blocked,
    in which case every job on it overran for the one whose code blocks it. That one fails;
    the others go back to their queues with the process's stop. None: no job's code blocks
    the loop, so none is to blame."""
    runner = async_jobs.runner
    if not runner.stuck:
        return jid  # the loop runs: the job ignores its cancellation
    culprit = runner.blocking()
    if culprit != jid:
        log.error("the event loop of async jobs is blocked by %s, not by job %s: %s",
                  f"job {runner.jid_of(culprit)}" if culprit else "no job's code",
                  runner.jid_of(jid),
                  "it fails, and the other async jobs go back to their queues" if culprit
                  else "every async job goes back to its queue")
    return culprit


def blocked_error() -> JobTimeout:
    return JobTimeout("the job blocked the event loop of async jobs (a blocking call inside"
                      " async def perform: use await, or asyncio.to_thread), so that another"
                      " job's timeout ran out; its process retired")
