"""The Manager: N processor threads fed by one fetcher thread.

Duties:
1. the fetcher moves as many jobs as there are idle processors (plus a small buffer) into
   the in-progress list, and acknowledges finished jobs in the same round trip (one script
   call for many jobs);
2. when the queues are empty, an idle processor blocks in Redis (BLMOVE, or a wake-up for
   several queues) instead of polling, and runs the job it receives itself: an idle worker
   starts a job without a hand-off between threads;
3. quiet() stops fetching; stop(deadline) waits for running jobs, then pushes every job that
   has not finished back to the front of its queue;
4. isolate() runs quarantined suspects one at a time, each alone in the process;
5. a Redis outage never kills a thread: log once, back off, reconnect, then look for jobs
   whose fetch reply was lost;
6. the flow (worker/flow.py) sizes the buffer and parks the processors that would only
   queue for the interpreter lock.

Processors and the fetcher meet in an Exchange (worker/exchange.py), without locks. The
fetcher's loop is in worker/feeding.py; this module holds the lifecycle and the processors.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from sidequest import connection, keys
from sidequest import limiter_renewal as renewal
from sidequest.config import Config
from sidequest.worker import stuck
from sidequest.worker.async_jobs import AsyncJobs
from sidequest.worker.asyncio_runner import AsyncRunner
from sidequest.worker.buffer import PriorityBuffer, drain
from sidequest.worker.exchange import NUDGE, STOP, WAKE, Exchange
from sidequest.worker.feeding import LISTEN, OUTAGE, Feeding
from sidequest.worker.fetch import Fetcher, Work
from sidequest.worker.flow import Flow
from sidequest.worker.inprogress import InProgress
from sidequest.worker.ledger import Ledger
from sidequest.worker.logs import counted, thread_id
from sidequest.worker.processor import Processor
from sidequest.worker.requeue import job_names, release_quarantine
from sidequest.worker.state import ProcessState
from sidequest.worker.threads import spawn
from sidequest.worker.timeouts import Timeouts
from sidequest.worker.waker import Waker

log = logging.getLogger("sidequest")
#: Seconds a stop waits for async jobs cancelled at its deadline to end: short, since the
#: watchdog kills the process 1.5 s past the deadline and the rest of the stop (pushing the
#: unfinished jobs back) must fit in that too. One that ignores its cancellation is
#: pushed back all the same.
ASYNC_CANCEL_WAIT = 0.5
#: Seconds past the stop's deadline by which its waits for threads end, whatever holds
#: them (a fetch retrying through an outage, a thread stuck in a job): the watchdog kills
#: the process at 1.5, and pushing the unfinished jobs back still has to fit.
STOP_GRACE = 1.0


class Manager(Feeding):
    def __init__(self, config: Config, identity: str, state: ProcessState) -> None:
        self.config = config
        self.identity = identity
        self.stopping = threading.Event()  # set at stop(): give up waiting on Redis
        self.quieted = threading.Event()
        #: Cleared when a fetch fails, set by the next heartbeat that renews the lease: after
        #: an outage longer than the lease, a peer may take this process for dead and requeue
        #: its in-progress list, jobs fetched before the lease is back included.
        self.lease_ok = threading.Event()
        self.lease_ok.set()
        self.isolating = threading.Event()  # running quarantined suspects, one at a time
        self._client = connection.new_client(retries=0, socket_timeout=config.fetch_timeout + 5)
        self.fetcher = Fetcher(config, identity, self._client)
        self._waker = Waker(self._client, [keys.queue(name) for name in config.queue_names])
        self.processor = Processor(config, identity, connection.new_client(retries=0), state,
                                   self.stopping)
        self.inprogress = InProgress(config, identity, self._client, self.processor)
        # As many async jobs may wait for a slot as there are threads: each thread would
        # otherwise have waited holding one.
        self.asyncio = AsyncRunner(config.async_concurrency, waiting=config.concurrency)
        self.timeouts = Timeouts(on_stuck=self._stuck)
        self.async_jobs = AsyncJobs(self.asyncio, state, self.processor.failed,
                                    self._async_acknowledge,
                                    acknowledge_later=self._async_acknowledge_later,
                                    acknowledge_with=self.processor.acknowledge_with,
                                    requeue=self.inprogress.requeue)
        self.async_jobs.timeouts = self.timeouts
        self.processor.async_jobs = self.async_jobs
        self.processor.timeouts = self.timeouts
        #: What to do when a job ignores its timeout: the launcher stops the process.
        self.retire: Callable[[], None] = self.quiet
        #: Called by a processor thread after each job it ran (the launcher's memory check,
        #: when there is a max_memory: a job that grew the process is noticed at once).
        self.after_job: Callable[[], None] | None = None
        #: Called at a stop once the jobs are done, before the event loop closes (the
        #: application's on_shutdown hooks, whose async ones run on that loop).
        self.drained: Callable[[], None] | None = None
        # Strict priority across several queues: the held jobs are handed out highest queue
        # first (a plain FIFO would run a lower queue's job fetched before a new critical one).
        self._jobs: Any = (PriorityBuffer(config.queue_names, sentinels=(LISTEN,))
                           if config.strict and len(config.queue_names) > 1
                           else queue.SimpleQueue())
        self._exchange = Exchange()
        self._flow = Flow(config.concurrency, config.prefetch_count, config.adaptive_threads)
        self._active = config.concurrency  # processors with a lower index take jobs
        self._parks = [queue.SimpleQueue[bool]() for _ in range(config.concurrency)]
        self._running: dict[str, Work] = {}  # tid -> job; single dict ops are GIL-atomic
        # A processor waits in Redis for the next job: the fetcher does not fetch; it only
        # carries the acknowledgements of jobs that finish meanwhile (an acknowledgement
        # wakes it when it dozes).
        self._blocking = False
        # Jobs the fetcher may still hand out; processors nudge it when ledger.low are held.
        self._ledger = Ledger(self._flow)
        self._threads: list[threading.Thread] = []
        self._thread_of: dict[str, threading.Thread] = {}
        self._fetcher_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.config.concurrency):
            self._threads.append(spawn(functools.partial(self._process_loop, i),
                                       f"sidequest-processor-{i}", self.stopping))
        self._fetcher_thread = spawn(self._fetch_loop, "sidequest-fetcher", self.stopping)
        self._threads.append(self._fetcher_thread)

    def quiet(self) -> None:
        """Stop fetching; running jobs finish, prefetched ones and async jobs waiting for a
        slot go back to their queues (another process can start them now)."""
        if self.quieted.is_set():
            return
        self.quieted.set()
        self._set_active(self.config.concurrency)  # parked threads must see the stop
        self._waker.interrupt()
        self._exchange.signal(WAKE)
        self.asyncio.close_intake()
        self._give_back_held()

    def stop(self, deadline: float, retiring: bool = False) -> bool:
        """Quiet, wait until ``deadline`` (monotonic) for running jobs, requeue the rest
        (each one a death when ``retiring``: see InProgress.requeue_all).

        Returns True when every processor finished in time.
        """
        # Through a Redis outage, writes retry only until the deadline: the stop must end
        # on time (a watchdog kills a process that overstays), and what could not be
        # written stays in the in-progress list, recovered from there.
        self.processor.give_up_at = deadline
        self.quiet()
        while (self._running or self._async_busy()) and time.monotonic() < deadline:
            time.sleep(0.02)  # shutdown only: a short poll keeps the hot path lock-free
        stuck = dict(self._running)
        leftovers = list(stuck.values())
        # Those pushed back; one given up on as stuck has its failure recorded instead.
        late = [work for jid in self.asyncio.started()
                if (work := self.async_jobs.work_of(jid)) is not None]
        self._cancel_late_async_jobs()
        self._give_back_held()  # fetched while we were quieting
        self._end_threads(stuck, deadline + STOP_GRACE)
        self.stopping.set()
        self.inprogress.acknowledge(self._collect()[1])
        if leftovers or late:
            count = len(leftovers) + len(late)
            log.warning("%s still running at the shutdown deadline (%s); pushing %s back%s",
                        counted(count, "job"), job_names(work.raw for work in leftovers + late),
                        "it" if count == 1 else "them",
                        " (each counts as a death of its process: see max_deaths)"
                        if retiring else "")
        self._waker.dispose()  # only now: the fetcher may have been waiting on it
        # The shutdown hooks before the jobs still running go back: those jobs run on in
        # their threads until the process exits, and pushed back (their limiter slots freed)
        # before the hooks' seconds, each ran in another process at the same time, over its
        # limiter's limit. Meanwhile they are still this process's, under its live lease.
        if self.drained is not None:
            self.drained()
        # The late async jobs too: their "queued" status is written on the loop, which a
        # job blocking it (a sync call in async def) keeps from running.
        self.inprogress.requeue_all(leftovers + late, retiring)
        if leftovers:  # their concurrency slots, held by threads the exit abandons
            renewal.renewer.give_back_all()
        self.asyncio.close()
        return not (leftovers or late)

    def _give_back_held(self) -> None:
        """Prefetched jobs no thread started go back to the front of their queues, said in
        the log: at a rolling deploy it is how one sees that nothing was left behind."""
        held = self._drain_jobs()
        if held and self.inprogress.requeue(held):
            log.info("%s fetched but not started put back in %s: %s",
                     counted(len(held), "job"), "its queue" if len(held) == 1 else "their queues",
                     job_names(work.raw for work in held))

    def running_names(self, most: int = 5) -> str:
        """The jobs running now, for the watchdog to name if it must kill the process."""
        running = list(self.processor.naming.values())
        names = running[:most]
        names += [f"jid={self.asyncio.jid_of(rid)}"
                  for rid in self.asyncio.started()[:max(0, most - len(names))]]
        hidden = len(running) + self.asyncio.busy - len(names)
        return ", ".join(names) + (f" and {hidden} more" if hidden > 0 else "")

    def _async_busy(self) -> bool:
        # A blocked loop can neither finish nor cancel a job: not worth waiting for.
        return self.asyncio.busy > 0 and not self.asyncio.stuck

    def _cancel_late_async_jobs(self) -> None:
        """Async jobs past the deadline: cancelled, they stay in the list (pushed back)."""
        running = self.asyncio.running()
        if running:
            self.asyncio.cancel(running)
            end = time.monotonic() + ASYNC_CANCEL_WAIT
            while self._async_busy() and time.monotonic() < end:
                time.sleep(0.02)

    def _end_threads(self, stuck: dict[str, Work], until: float) -> None:
        """Let each processor thread (but the stuck ones) and then the fetcher end, waiting
        for none past ``until`` (monotonic)."""
        # Again: a fetcher round that began before quiet() may have parked threads since,
        # and each thread must take its None below to exit.
        self._set_active(self.config.concurrency)
        for _ in range(self.config.concurrency):
            self._jobs.put(None)

        def join(thread: threading.Thread) -> None:
            thread.join(max(0.05, min(self.config.fetch_timeout + 2, until - time.monotonic())))

        for tid, thread in list(self._thread_of.items()):
            if tid not in stuck:  # it posts its last acknowledgement (or ends its wait in
                join(thread)  # Redis), then exits
        self._exchange.signal(STOP)
        if self._fetcher_thread is not None:  # it flushes the last acknowledgements
            join(self._fetcher_thread)

    def _stuck(self, jid: str) -> None:
        """A job ignored its timeout: record its failure, then retire the process."""
        try:
            stuck.fail(jid, self._running, self.processor, self.async_jobs)
        finally:  # whatever recording its failure met, the process must not stay
            self.retire()

    def _async_acknowledge(self, raw: bytes) -> None:
        """An async job succeeded (called off the event loop): acknowledge it with the next
        fetch round (it wakes a dozing fetcher), or now once quieted: the fetcher may be
        gone."""
        if self.quieted.is_set():
            self.inprogress.acknowledge([raw])
        else:
            self._exchange.finished(raw)

    def _async_acknowledge_later(self, raw: bytes) -> bool:
        """An async job succeeded (called on the event loop): hand its acknowledgement to
        the fetcher's next round, a deque append and no I/O. False once quieted, when the
        fetcher may be gone: the caller then sends it itself, off the loop
        (_async_acknowledge)."""
        if self.quieted.is_set():
            return False
        self._exchange.finished(raw)
        return True

    @property
    def active(self) -> int:
        """Processor threads taking jobs now (the others are parked by the flow)."""
        return self._active

    def isolate(self) -> None:
        """Stop fetching from the queues; once every running job has finished, run the
        quarantined suspects one at a time, each alone, until the quarantine is empty."""
        if not self.isolating.is_set():
            log.warning("running quarantined jobs one at a time, each alone in this process")
        self.isolating.set()
        self._set_active(self.config.concurrency)  # "alone" counts every thread idle
        self._exchange.signal(WAKE)

    def tend_quarantine(self, client: redis.Redis) -> None:
        """At each heartbeat: one process at a time runs the suspects, under a lock that
        expires with its lease (renewed here while it runs them)."""
        ttl = int(self.config.lease_ttl * 1000)
        if self.isolating.is_set():
            if self.quieted.is_set():
                # A quiet process takes no more suspects: held on, the lock kept every other
                # process from running them for as long as this one stayed quiet.
                self.isolating.clear()
                release_quarantine(client, self.identity)
            else:
                client.pexpire(keys.QUARANTINE_LOCK, ttl)
            return
        if self.quieted.is_set() or not client.llen(keys.QUARANTINE):
            return
        if not self.fetcher.has_suspects():  # another pool's jobs: not for it
            return
        if client.set(keys.QUARANTINE_LOCK, self.identity, nx=True, px=ttl):
            self.isolate()

    # -- processors --------------------------------------------------------------------

    def _process_loop(self, index: int) -> None:
        tid = thread_id()
        self._thread_of[tid] = threading.current_thread()
        park = self._parks[index]
        exchange, ledger = self._exchange, self._ledger
        ack: bytes | None = None
        while True:
            if index >= self._active:  # paced out: hand in the last job, wait to be called
                exchange.finished(ack)
                ack = None
                park.get()
                continue
            exchange.idle(ack, self._jobs, ledger.low)  # idle now, and this job is done
            work = self._jobs.get()
            if work is None:
                return
            if work is LISTEN:
                work = self._listen()
                if work is None:
                    ack = None
                    continue
            if self.quieted.is_set():  # fetched just as we were told to quiet: not ours now
                self.inprogress.requeue([work])
                ack = None
                continue
            ack = self._run(work, tid)

    def _run(self, work: Work, tid: str) -> bytes | None:
        """Run one job; returns the acknowledgement the fetcher should carry, if any."""
        self._running[tid] = work
        ok: bool | None = False  # None: an async job the event loop now runs and acknowledges
        try:
            ok = self.processor.run(work, tid)
        except BaseException:  # the processor handles job errors; this is our own bug
            log.exception("internal error running a job; it stays in progress for recovery")
        finally:
            self._running.pop(tid, None)  # gone already if it was declared stuck
        if self.after_job is not None:
            self.after_job()
        if not ok:
            return None
        if self.quieted.is_set():
            # The fetcher may be gone (stopping) and will carry nothing soon: send it now,
            # rather than leave a finished job where a crash would run it again.
            self.inprogress.acknowledge([work.raw])
            return None
        return work.raw

    def _listen(self) -> Work | None:
        """Nothing queued: wait in Redis for the next job, for this thread to run (the
        fetcher handed this processor the wait and fetches nothing until it ends)."""
        try:
            if len(self.config.queues) == 1:
                return self.fetcher.wait(self.config.fetch_timeout)
            return self.fetcher.wait_several(self._waker, self.config.fetch_timeout,
                                             self.config.idle_wait)
        except redis.RedisError as exc:
            log.warning("Redis error while waiting for jobs, backing off: %s", exc)
            self.inprogress.fetch_failed()  # the move may have happened, its reply lost
            if isinstance(exc, OUTAGE):
                self.lease_ok.clear()
            self.stopping.wait(1.0)
            return None
        finally:
            self._blocking = False
            self._exchange.signal(NUDGE)  # more may follow: the fetcher looks again

    def _drain_jobs(self) -> list[Work]:
        return [work for work in drain(self._jobs) if work is not LISTEN]


