"""Runs one job: decode it, run the server middleware around ``perform``, then record the
outcome. Success is acknowledged by the Manager in batches; a failure is written here, in one
transaction with its acknowledgement, so the job is never both retried and re-run.

Duties:
1. a payload that cannot be decoded goes to the dead set with its raw text, once;
2. an unknown class is an ordinary failure (retries, then dead), as in Sidekiq;
3. any exception, SystemExit and KeyboardInterrupt included, is a failure of that job only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis
from redis.exceptions import RedisClusterException

from sidequest import (
    hooks,
    joblog,
    keys,
    middleware,
    registry,
    retry,
    signatures,
    status,
    url_problems,
)
from sidequest.config import Config
from sidequest.errors import TIMEOUT_MESSAGE, JobTimeout, PayloadError, UnknownJobError
from sidequest.job import Job
from sidequest.morgue import add_dead
from sidequest.payload import KWARGS, Payload, decode, dumps, job_class, normalized
from sidequest.worker import async_jobs, failures, guards, timeouts, with_ack
from sidequest.worker.clock import now
from sidequest.worker.fetch import ACK_FROM_TAIL, Work
from sidequest.worker.logs import job_info, log_failure
from sidequest.worker.state import ProcessState
from sidequest.worker.timeouts import Timeouts

log = logging.getLogger("sidequest")


class Processor:
    def __init__(
        self,
        config: Config,
        identity: str,
        client: redis.Redis,
        state: ProcessState,
        stopping: threading.Event,
    ) -> None:
        self.config = config
        self.client = client
        self.state = state
        self.stopping = stopping
        self.inprogress = keys.inprogress(identity)
        #: Set by the manager: runs ``async def perform`` jobs on the event loop.
        self.async_jobs: async_jobs.AsyncJobs | None = None
        #: Set by the manager: the watchdog of jobs with a ``timeout``.
        self.timeouts: Timeouts | None = None
        #: Thread jobs under the watchdog whose outcome is not recorded yet (by id): the
        #: thread that ran one and the watchdog that gave up on it (``settle``) both try
        #: to take it out, and only the one that does records an outcome.
        self._watched_jobs: set[int] = set()
        self._watched_lock = threading.Lock()
        #: Set by the manager's stop (monotonic): past it a write through an outage gives up,
        #: so that the stop ends on time (its jobs stay in the in-progress list).
        self.give_up_at: float | None = None
        #: tid -> "Class jid=..." of the job each thread runs now.
        self.naming: dict[str, str] = {}

    def run(self, work: Work, tid: str) -> bool | None:
        """Run one job; True means "acknowledge it" (it succeeded), False that it was handled,
        None that an ``async def perform`` went to the event loop, which records its outcome."""
        try:
            # Missing queue, jid or created_at filled in as Sidekiq's client would; a retry
            # then goes to the queue the job was fetched from.
            job = normalized(decode(work.raw), work.queue)
        except PayloadError as exc:
            self._bury_raw(work, exc)
            self.state.finished(tid, failed=True)
            return False
        if self.async_jobs is not None and not work.suspect:
            cls = registry.find(job["class"])
            if cls is not None and cls.async_perform and async_jobs.chain_is_async():
                self.async_jobs.start(work, job, cls)
                return None
        # Raw bytes here; the heartbeat decodes the few that are running when it beats.
        self.state.started(tid, {"queue": work.queue, "payload": work.raw,
                                 "run_at": int(time.time())})
        failed, counted = True, False
        # For the watchdog, should this job freeze the process (read once a second).
        self.naming[tid] = f"{job_class(job)} jid={job.get('jid')}"
        try:
            ran = self._perform(work, job, tid)
            # None: given up on as stuck, its failure recorded and counted (worker/stuck.py)
            failed, counted = ran is not True, ran is None
        finally:
            self.naming.pop(tid, None)
            if not counted:
                self.state.finished(tid, failed)
        # It ran alone without taking the process down: not a poison pill. (One whose class
        # this process lacks did not run: its count stands.)
        if work.suspect and registry.find(job["class"]) is not None:
            jid = str(job.get("jid", ""))
            self.write(lambda pipe: pipe.delete(keys.deaths(jid)))
        steps = with_ack.take(job) if not failed else []
        if steps:
            self.acknowledge_with(work, steps)
            return False  # acknowledged here
        return not failed

    def acknowledge_with(self, work: Work, steps: list[with_ack.Step]) -> None:
        """Acknowledge a job and write what its end records (its batch's count, its status,
        its unique lock's release) in one transaction: a crash between them would let an
        identical job in, or leave a batch waiting, while the reaper runs this one again."""
        def write(pipe: Any) -> None:
            pipe.lrem(self.inprogress, ACK_FROM_TAIL, work.raw)
            for step in steps:
                step(pipe)

        self.write(write)

    def _perform(self, work: Work, job: Payload, tid: str) -> bool | None:
        fields = {"tid": tid, "class": job_class(job), "jid": job.get("jid")}
        info = log.isEnabledFor(logging.INFO)
        if info:
            job_info(log, "start", fields)
        started = time.monotonic()
        cls: type[Job] | None = None
        watched = False
        try:
            cls = registry.find(job["class"])
            if cls is None:
                self._unknown(work, job)  # raises, unless a guard dropped it
            else:
                limit = timeouts.seconds(job.get("timeout"))
                watched = self.timeouts is not None and limit is not None
                if watched:
                    self._watch(work)  # before anything can raise: the except settles it
                if watched and cls.async_perform:
                    self._run_async_here(work, job, cls, cast(float, limit))
                else:
                    self._run_known(work, job, cls, limit if watched else None)
        except BaseException as exc:  # a job's SystemExit must not end the worker
            if watched and not self.settle(work):
                return None  # given up on as stuck: its failure is recorded already
            fields["elapsed"] = round(time.monotonic() - started, 3)
            log_failure(log, exc, fields)
            self.failed(work, job, exc, cls)
            return False
        if watched and not self.settle(work):
            return None
        if info:
            job_info(log, guards.done_line(job),
                     {**fields, "elapsed": round(time.monotonic() - started, 3)})
        return True

    def _run_known(self, work: Work, job: Payload, cls: type[Job],
                   limit: float | None) -> None:
        """Run the job through the middleware, its thread watched when ``limit`` is given
        (the caller then settles its outcome with the watchdog, whether it raised or not)."""
        instance = cls()
        instance.jid = job.get("jid", "")
        instance.payload = job
        args, kwargs = job["args"], job.get(KWARGS) or {}
        if limit is not None and self.timeouts is not None:
            self._watched(self.timeouts, limit, (work, job, instance, args, kwargs))
        elif cls.async_perform and self._loop_chain():  # a suspect, run alone
            self._chain_on_loop(work, job, instance, async_jobs.timed(
                lambda: signatures.call_perform(instance, args, kwargs),
                timeouts.seconds(job.get("timeout"))))
        else:
            self._chain(work, job, instance, lambda: self._call(instance, args, kwargs))

    def _run_async_here(self, work: Work, job: Payload, cls: type[Job], limit: float) -> None:
        """An async job this thread runs (a suspect, run alone, or one around sync
        middleware), waiting for the loop. Its limit is its coroutine's, on the loop, not
        the thread watchdog's; should the loop never deliver it (a blocking call in the job,
        a cancellation ignored), the timeouts thread gives the job up as stuck, as it does a
        job the loop runs for itself, instead of this thread waiting for good."""
        assert self.timeouts is not None
        jid = str(job.get("jid", ""))
        self.timeouts.watch_async(jid, limit)
        try:
            self._run_known(work, job, cls, None)
        finally:
            self.timeouts.unwatch_async(jid)

    def _watch(self, work: Work) -> None:
        with self._watched_lock:
            self._watched_jobs.add(id(work))

    def settle(self, work: Work) -> bool:
        """Take a watched job's outcome: True for the first caller, the thread that ran it
        or the watchdog giving up on it as stuck; False for the other."""
        with self._watched_lock:
            if id(work) not in self._watched_jobs:
                return False
            self._watched_jobs.discard(id(work))
            return True

    def _watched(self, timeouts: Timeouts, limit: float,
                 chain: tuple[Work, Payload, Job, Any, Any]) -> None:
        try:
            work, job, instance, args, kwargs = chain
            # The traceback of a timeout the job caught starts inside _call, at its code.
            with timeouts.watch(str(job.get("jid", "")), limit,
                                Processor._call.__code__) as watched:
                def final() -> Any:
                    result = self._call(instance, args, kwargs)
                    watched.raise_if_fired()  # it caught its JobTimeout: a failure still
                    return result
                self._chain(work, job, instance, final)
        except JobTimeout as exc:
            # Raised into the thread as a bare class (no message can ride along): give it the
            # limit, as an async job's has, keeping the traceback of where the job was.
            if exc.args == (TIMEOUT_MESSAGE,):
                exc.args = (f"{TIMEOUT_MESSAGE} of {limit:g} s",)
            raise

    def _chain(self, work: Work, job: Payload, instance: Job,
               final: Callable[[], Any]) -> None:
        # For the application's log lines (sidequest.joblog.JobFields).
        token = joblog.current.set((instance.jid, job_class(job), work.queue))
        try:
            if len(middleware.server):
                middleware.server.invoke((instance, job, work.queue), final)
            else:
                final()
        finally:
            joblog.current.reset(token)

    def _loop_chain(self) -> bool:
        """The server middleware must run on the event loop: one has only the ``acall``
        form (an application whose jobs are all async). A job this thread runs (an async
        suspect, an unknown class) goes through it there, this thread waiting."""
        return (self.async_jobs is not None and middleware.server.needs_loop()
                and async_jobs.chain_is_async())

    def _chain_on_loop(self, work: Work, job: Payload, instance: Job,
                       final: Callable[[], Awaitable[Any]]) -> None:
        assert self.async_jobs is not None  # _loop_chain said so

        async def chain() -> None:
            # In the task's own context: the application's log lines name the job there.
            joblog.current.set((instance.jid, job_class(job), work.queue))
            await async_jobs.invoke_async((instance, job, work.queue), final)

        self.async_jobs.runner.wait_result(chain())

    def _unknown(self, work: Work, job: Payload) -> None:
        """A job whose class this worker lacks fails where its perform would run, inside the
        server middleware: the metrics, the traces and the application's own middleware
        count it against its class, as any failure, not only in the global total."""
        stand_in = Job()  # the base class: the middleware reads jid and payload
        stand_in.jid = job.get("jid", "")
        stand_in.payload = job
        failure = UnknownJobError(registry.why_unknown(str(job["class"])))
        reached: list[bool] = []

        def fail() -> None:
            reached.append(True)
            raise failure

        async def afail() -> None:
            fail()

        if self._loop_chain():
            self._chain_on_loop(work, job, stand_in, afail)
        else:
            self._chain(work, job, stand_in, fail)
        if reached:
            raise failure  # a middleware that swallowed it does not make the job run
        # Not reached: a guard dropped it (expired, cancelled) or a middleware skipped it,
        # as it would a known job; done with, not failed.

    def _call(self, instance: Job, args: Any, kwargs: Any) -> Any:
        result: Any = signatures.call_perform(instance, args, kwargs)
        if inspect.iscoroutine(result):
            # An async job run by this thread (sync middleware around it, or a suspect run
            # alone): the event loop runs it, under its own time limit; this thread waits.
            timed = async_jobs.timed(lambda: result,
                                     timeouts.seconds(instance.payload.get("timeout")))()
            if self.async_jobs is None:
                return asyncio.run(timed)  # type: ignore[arg-type]
            return self.async_jobs.runner.wait_result(timed)  # type: ignore[arg-type]
        return result

    def failed(self, work: Work, job: Payload, exc: BaseException, cls: type[Job] | None) -> None:
        """Sidekiq's order: record the error, check exhaustion, then ask the class's
        ``retry_in``; write the outcome with the acknowledgement, then run the handlers."""
        with_ack.discard(job)
        ask: retry.RetryIn | None = None
        if cls is not None:
            found = cls

            def ask(count: int, error: BaseException, payload: Payload) -> Any:
                return failures.safely(lambda: found.retry_in(count, error, payload),
                                       "retry_in", job)

        decision = retry.decide(
            job, exc, now(), default_retry=cls.retry if cls else True,
            max_retries=self.config.max_retries, retry_in=ask,
        )
        failed = decision.job
        to_morgue = failures.to_morgue(decision, cls, exc)
        body = dumps(failed)

        def write(pipe: Any) -> None:
            if decision.action == "retry":
                self._to_retry(pipe, failed, body, decision.at, exc)
            elif to_morgue:
                add_dead(pipe, body, now(), self.config.dead_max_jobs, self.config.dead_timeout)
            failures.record(pipe, failed, exc, retrying=decision.action == "retry")
            pipe.lrem(self.inprogress, ACK_FROM_TAIL, work.raw)

        # Not written (a stop through an outage): the job is still in the in-progress list
        # and runs again, so it did not die; its unique lock and status stay as they are.
        if self.write(write):
            failures.say_next(decision, failed, to_morgue)  # after its fail line: what comes next
            if decision.action != "retry":
                hooks.report_death(failed, exc)
        hooks.report_error(exc, {"context": "Job raised exception", "job": job,
                                 "queue": work.queue})

    @staticmethod
    def _to_retry(pipe: Any, failed: Payload, body: str, at: float,
                  exc: BaseException) -> None:
        pipe.zadd(keys.RETRY, {body: at})
        if status.wanted(failed):
            status.write(pipe, failed, "retrying", **status.failure(exc))
            status.keep_until_retry(pipe, failed, at)

    def _bury_raw(self, work: Work, exc: PayloadError) -> None:
        """Keep an unreadable payload in the dead set; never redeliver it."""
        log.error("unreadable payload from queue %s moved to the dead set: %s", work.queue, exc)
        entry = failures.dead_entry(work, exc)

        def write(pipe: Any) -> None:
            add_dead(pipe, entry, now(), self.config.dead_max_jobs, self.config.dead_timeout)
            pipe.lrem(self.inprogress, ACK_FROM_TAIL, work.raw)

        self.write(write)
        raw = work.raw
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        hooks.report_error(exc, {"context": "Invalid JSON for job", "queue": work.queue,
                                 "jobstr": text})

    def write(self, commands: Callable[[Any], None],
              what: str = "record a job's outcome") -> bool:
        """Run ``commands`` in one MULTI, retrying through a Redis outage until stopping (or
        the stop's deadline). ``what`` the write does, for the log. False if it gave up.

        If we give up at shutdown the job stays in the in-progress list, so it is requeued
        and runs again: at least once, never lost.
        """
        delay, said = 0.05, False
        while True:
            try:
                pipe = self.client.pipeline(transaction=True)
                commands(pipe)
                pipe.execute()
                return True
            except (redis.RedisError, RedisClusterException) as exc:  # a slot moving too
                if self._giving_up():
                    log.warning("could not %s before stopping (%s): the jobs stay in this"
                                " process's in-progress list, and are recovered from there",
                                what, exc)
                    return False
                if not said:  # once per write: an outage is one line per thread, not dozens
                    log.warning("Redis error: could not %s, retrying until it answers: %s",
                                what, url_problems.readable(exc))
                    said = True
                self.stopping.wait(delay)
                delay = min(delay * 2, 2.0)

    def _giving_up(self) -> bool:
        limit = self.give_up_at
        return self.stopping.is_set() or (limit is not None and time.monotonic() >= limit)
