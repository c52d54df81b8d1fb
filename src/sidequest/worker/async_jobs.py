"""Running one ``async def perform`` job on the process's event loop (worker/asyncio_runner.py)
and recording its outcome as the processor does for thread jobs: a success is acknowledged,
a failure goes through the retry rules, a cancellation at shutdown leaves the job in the
in-progress list for the stop to push back."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from sidequest import joblog, middleware, signatures, unique
from sidequest.errors import TIMEOUT_MESSAGE, JobTimeout
from sidequest.job import Job
from sidequest.payload import KWARGS, Payload, job_class
from sidequest.worker import cancels, guards, timeouts, with_ack
from sidequest.worker.asyncio_runner import AsyncRunner
from sidequest.worker.fetch import Work
from sidequest.worker.logs import job_info, log_failure
from sidequest.worker.overrun import Overrun, stepped
from sidequest.worker.state import ProcessState
from sidequest.worker.timeouts import Timeouts

log = logging.getLogger("sidequest")

Failed = Callable[[Work, Payload, BaseException, "type[Job] | None"], None]
#: Acknowledges a job with the writes its end records, in one transaction.
Acknowledging = Callable[[Work, list[with_ack.Step]], None]


def chain_is_async() -> bool:
    """Every server middleware has a coroutine form: the chain can run on the loop. The
    processor asks this of each async job; a no sends the job to a thread, which is said
    once per process (``warn_sync_chain``)."""
    plain = [entry for entry in middleware.server if not hasattr(entry, "acall")]
    if plain:
        warn_sync_chain(plain)
    return not plain


_sync_chain_warned = False
_sync_chain_lock = threading.Lock()


def warn_sync_chain(plain: list[Any]) -> None:
    """Log, once per process, that async jobs run on threads because of the middlewares in
    ``plain``: the cap that puts on them is otherwise invisible (jobs just wait)."""
    global _sync_chain_warned
    if _sync_chain_warned:  # every async job asks: no lock once it is said
        return
    with _sync_chain_lock:  # processor threads ask at once: one warning, not one each
        if _sync_chain_warned:
            return
        _sync_chain_warned = True
    names = ", ".join(qualified_name(entry) for entry in plain)
    which = f"middleware {names} has" if len(plain) == 1 else f"middlewares {names} have"
    log.warning("async jobs run on worker threads, not the event loop: server %s no acall "
                "coroutine form, so each async job holds a worker thread for its whole run "
                "and at most -c (concurrency) of them run at once. Give each such "
                "middleware an `async def acall(job, payload, queue, call_next)` that awaits "
                "call_next()",
                which)


def qualified_name(entry: Any) -> str:
    """``module.Qualified.name`` of a middleware: a function's or method's own, else (an
    instance with ``__call__``) its class's."""
    named = entry if hasattr(entry, "__qualname__") else type(entry)
    return f"{getattr(named, '__module__', '?')}.{named.__qualname__}"


async def invoke_async(args: tuple[Any, ...], final: Callable[[], Awaitable[Any]]) -> Any:
    return await middleware.server.ainvoke(args, final)


class AsyncJobs:
    def __init__(self, runner: AsyncRunner, state: ProcessState, failed: Failed,
                 acknowledge: Callable[[bytes], None], *,
                 acknowledge_later: Callable[[bytes], bool] | None = None,
                 acknowledge_with: Acknowledging,
                 requeue: Callable[[list[Work]], object]) -> None:
        self.runner = runner
        self.state = state
        self._failed = failed
        self._acknowledge = acknowledge  # may write to Redis: called off the loop
        # Hands the acknowledgement to the fetcher's next round without I/O, so it runs on
        # the loop itself; False when no round will carry it soon. A hop to the executor per
        # job woke a thread per completion: about a tenth of the worker's CPU time in a
        # profile of a drain of one-INCR async jobs (bench/async_bench.py).
        self._acknowledge_later = acknowledge_later
        # A success that also records its end (its unique lock's release, its batch's count,
        # its stored status), in one transaction (off the loop).
        self._acknowledge_with = acknowledge_with
        # Puts unstarted jobs back at the front of their queues (writes to Redis: off the loop).
        self._requeue = requeue
        #: Set by the manager: keeps the deadlines, to notice a job that cannot be cancelled.
        self.timeouts: Timeouts | None = None
        #: run id -> what ``give_up`` needs; a job not in it when it ends was given up on.
        #: The run id is the jid, made unique (``_run_id``): jobs may share a jid.
        self._live: dict[str, tuple[Work, Payload, type[Job]]] = {}
        self._ids = threading.Lock()

    def start(self, work: Work, job: Payload, cls: type[Job]) -> None:
        """Hand the job to the loop, where it waits for one of the ``async_concurrency``
        slots; this thread waits only while the loop has no room to hold it."""
        jid = str(job.get("jid", ""))
        with self._ids:
            rid = self._run_id(jid)
            self._live[rid] = (work, job, cls)
        key = f"async-{rid}"  # its own entry on the Busy page: the thread moves on
        instance = cls()
        instance.jid, instance.payload = jid, job
        args, kwargs = job["args"], job.get(KWARGS) or {}
        fields: dict[str, Any] = {"tid": key, "class": job_class(job), "jid": jid}
        limit = timeouts.seconds(job.get("timeout"))
        began = 0.0  # monotonic, once it has a slot

        async def run() -> Any:
            # Only now, with a slot, does it run: the Busy page, its start line, its elapsed
            # time and its time limit count from here, not from the wait for a slot.
            nonlocal began
            began = time.monotonic()
            self.state.started(key, {"queue": work.queue, "payload": work.raw,
                                     "run_at": int(time.time())})
            if log.isEnabledFor(logging.INFO):
                job_info(log, "start", fields)
            if self.timeouts is not None and limit is not None:
                self.timeouts.watch_async(rid, limit, jid)
            joblog.current.set((jid, fields["class"], work.queue))  # this task's own context
            final = timed(lambda: signatures.call_perform(instance, args, kwargs), limit)
            return await invoke_async((instance, job, work.queue), final)

        async def done(error: BaseException | None) -> None:
            if not began:
                self._live.pop(rid, None)
                await asyncio.get_running_loop().run_in_executor(None, self._requeue, [work])
                return
            if self.timeouts is not None and limit is not None:
                self.timeouts.unwatch_async(rid)
            if self._live.pop(rid, None) is None:
                return  # given up on (stuck past its timeout): its failure is recorded
            fields["elapsed"] = round(time.monotonic() - began, 3)
            self._count(key, jid, error)
            await self._outcome(work, job, cls, fields, error)

        if not self.runner.submit(rid, cls.wire_name(), run, done, job_jid=jid):
            # Quieted or stopping: it never started, so back to the front of its queue.
            self._live.pop(rid, None)
            self._requeue([work])

    def _run_id(self, jid: str) -> str:
        """``jid``, or ``jid#2``, ``jid#3``... while a job of that jid runs here already (a
        jid set by hand, pushed twice): keyed by the jid alone, the second one's end found
        no entry, was taken for a job given up on, and was never acknowledged."""
        rid, n = jid, 1
        # The runner too: a run leaves _live before its outcome is written, and the runner
        # only after that.
        while rid in self._live or self.runner.listed(rid):
            n += 1
            rid = f"{jid}#{n}"
        return rid

    def works(self) -> list[Work]:
        """The jobs handed to the loop whose outcome is not recorded yet: in the in-progress
        list, though no thread runs them (not strays)."""
        return [work for work, _, _ in list(self._live.values())]

    def work_of(self, rid: str) -> Work | None:
        """What the run ``rid`` was fetched as, while its outcome is still this object's."""
        entry = self._live.get(rid)
        return None if entry is None else entry[0]

    def give_up(self, jid: str) -> tuple[Work, Payload, type[Job]] | None:
        """The job is stuck past its timeout: its outcome is no longer this object's to record
        (the caller records its failure). Returns what it ran, or None if it has ended."""
        entry = self._live.pop(jid, None)
        if entry is not None:
            self.state.finished(f"async-{jid}", failed=True)
        return entry

    def _count(self, key: str, jid: str, error: BaseException | None) -> None:
        """Count the run in the process's stats as a thread job's would be. One cancelled by
        sidequest.api.cancel stopped for good, as a thread job that saw ``cancelled()`` and
        returned: processed, not failed. One cancelled by a stop runs again once pushed back,
        as a thread job still running at the stop's end does: this run is not counted."""
        stopped = stop_of(jid, error, self.runner.closing)
        if stopped == STOPPED_AT_SHUTDOWN:
            self.state.work.pop(key, None)  # off the Busy page, and in neither counter
        else:
            self.state.finished(key, failed=error is not None and stopped is None)

    async def _outcome(self, work: Work, job: Payload, cls: type[Job], fields: dict[str, Any],
                       error: BaseException | None) -> None:
        loop = asyncio.get_running_loop()
        jid = str(fields["jid"])
        stopped = stop_of(jid, error, self.runner.closing)
        if error is None:
            if log.isEnabledFor(logging.INFO):
                job_info(log, guards.done_line(job), fields)
            steps = with_ack.take(job)
            if steps:
                await loop.run_in_executor(None, self._acknowledge_with, work, steps)
            elif self._acknowledge_later is None or not self._acknowledge_later(work.raw):
                await loop.run_in_executor(None, self._acknowledge, work.raw)
        elif stopped == CANCELLED:
            # Done, as a thread job that saw cancelled() and returned: its own line, not a
            # warning of something gone wrong.
            if log.isEnabledFor(logging.INFO):
                job_info(log, "done: cancelled", fields)
            await loop.run_in_executor(None, self._acknowledge_with, work, _cancelled(job))
        elif stopped == STOPPED_AT_SHUTDOWN:
            log.warning("async job %s cancelled at shutdown; it goes back to its queue",
                        jid, extra=fields)  # still in the in-progress list: the stop pushes it back
        else:
            log_failure(log, error, fields)
            await loop.run_in_executor(None, self._failed, work, job, error, cls)


def _cancelled(job: Payload) -> list[with_ack.Step]:
    """What a job cancelled by the API records with its acknowledgement: what its guards
    marked, or, if the cancellation came before they marked anything (while it waited to
    release its unique lock, or to save its "running" status), its end as cancelled."""
    steps = with_ack.take(job)
    if not steps:
        guards.dropped(job, "cancelled")
        steps = with_ack.take(job)
    # Done for good, as a thread job that saw cancelled() and returned: its identity goes
    # back with the acknowledgement (an identical push may come in again).
    unique.mark_success(job)
    return steps + with_ack.take(job)


#: How an async job's run was cut short by a cancellation (``stop_of``).
CANCELLED = "cancelled"
STOPPED_AT_SHUTDOWN = "shutdown"


def stop_of(jid: str, error: BaseException | None, closing: bool) -> str | None:
    """CANCELLED for a run ended by sidequest.api.cancel, STOPPED_AT_SHUTDOWN for one
    cancelled by a stop (``closing``: it goes back to its queue), None for a success or a
    failure, a CancelledError from anywhere else included (a task the job awaited was
    cancelled): that is the job's own error. A time limit is JobTimeout by then."""
    if not isinstance(error, asyncio.CancelledError):
        return None
    if cancels.is_cancelled(jid):
        return CANCELLED
    return STOPPED_AT_SHUTDOWN if closing else None


def timed(call: Callable[[], Any], limit: float | None) -> Callable[[], Awaitable[Any]]:
    """``call()``'s coroutine, cancelled at ``limit`` seconds with JobTimeout (if a limit).

    The cancellation is made one loop pass after the deadline's timer runs. When another
    job's blocking call held the loop past the deadline, the wake-up of this job's wait (a
    timer or a reply that came meanwhile) runs in the same pass as the deadline's timer, and
    the task's step it queues comes before the cancellation: a job whose wait ended in time
    resumes and may finish, where the cancellation would have landed first and failed it."""
    async def final() -> Any:
        coro = cast("Awaitable[Any]", call())
        if limit is None:
            return await coro
        if sys.version_info >= (3, 11):
            # In the job's own task, where the middleware around it runs (a session scoped
            # to the task is the job's); wait_for ran it in another task before 3.12.
            # expired(): the job's own TimeoutError (an HTTP client's) is not ours.
            loop = asyncio.get_running_loop()
            overrun = Overrun(loop.time() + limit)
            try:
                async with asyncio.timeout(None) as scope:
                    # Expired one loop pass after the deadline (a reschedule to the past is
                    # a call_soon): see the docstring.
                    timer = loop.call_at(overrun.deadline, scope.reschedule, 0.0)
                    try:
                        result = await stepped(coro, overrun)
                    finally:
                        timer.cancel()
            except TimeoutError as exc:
                if scope.expired():
                    raise timed_out(limit, exc.__cause__ or exc.__context__) from None
                raise
            if scope.expired() or overrun.happened:
                # It caught its cancellation and returned, or its own code held the loop (a
                # blocking call) past its limit, so the timer never got to run: too late.
                raise timed_out(limit, None)
            return result
        return await _in_this_task(coro, limit)

    return final


async def _in_this_task(coro: Awaitable[Any], limit: float) -> Any:
    """Python 3.10's time limit without wait_for's task of its own: cancel this task when
    the limit passes, and tell that cancellation from any other."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    settled = False  # the job's coroutine has returned or raised: nothing left to cancel
    late: asyncio.Handle | None = None

    def expire() -> None:
        nonlocal expired
        if not settled and not task.done():
            expired = True
            task.cancel()

    def fire() -> None:
        nonlocal late
        late = loop.call_soon(expire)  # a pass later: see timed()

    loop = asyncio.get_running_loop()
    timer = loop.call_later(limit, fire)
    overrun = Overrun(timer.when())
    try:
        result = await stepped(coro, overrun)
    except asyncio.CancelledError as exc:
        if expired:
            raise timed_out(limit, exc) from None
        raise
    finally:
        settled = True
        timer.cancel()
        if late is not None:  # fired, its cancellation still queued: the job is done
            late.cancel()
    if expired or overrun.happened:  # see timed(): too late either way
        raise timed_out(limit, None)
    return result


def timed_out(limit: float, cancellation: BaseException | None) -> JobTimeout:
    """The JobTimeout of a job cancelled at its time limit, with the traceback of that
    cancellation: it runs down to the line where the job was waiting, which its failure's log
    line and backtrace then name, as a thread job's do. Raised afresh it would hold only
    Sidequest's own frames, from the time limit outwards."""
    error = JobTimeout(f"{TIMEOUT_MESSAGE} of {limit:g} s")
    if isinstance(cancellation, asyncio.CancelledError):
        # Its first frame is the one raising this, which the raise puts back on top.
        tb = cancellation.__traceback__
        error = error.with_traceback(tb.tb_next if tb is not None else None)
    return error
