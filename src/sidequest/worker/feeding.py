"""The Manager's fetcher thread: one loop that fetches as many jobs as processors are owed,
acknowledges finished ones in the same round trip, hands one idle processor the wait in Redis
when the queues are empty, and paces the processors through the flow (worker/flow.py).

A mixin of the Manager, whose state it shares with the processor threads: they meet in the
Exchange and the job queue, without locks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from sidequest import url_problems
from sidequest.config import Config
from sidequest.worker.async_jobs import AsyncJobs
from sidequest.worker.buffer import take_back
from sidequest.worker.exchange import WAKE, Exchange
from sidequest.worker.fetch import Fetcher, Work
from sidequest.worker.flow import Flow
from sidequest.worker.inprogress import InProgress
from sidequest.worker.ledger import Ledger, Round
from sidequest.worker.requeue import release_quarantine

log = logging.getLogger("sidequest")
#: Longest a finished job waits for its acknowledgement while no fetch is due, in seconds.
ACK_DELAY = 0.05
#: Errors of a Redis that cannot be reached (not of a refused command): the lease may lapse.
OUTAGE = (redis.ConnectionError, redis.TimeoutError)
#: Handed to an idle processor through the job queue: wait in Redis for the next job.
LISTEN = Work("", b"")


class Feeding:
    """The fetch loop and what it steers; the Manager sets every attribute below."""

    config: Config
    identity: str
    quieted: threading.Event
    isolating: threading.Event
    lease_ok: threading.Event
    stopping: threading.Event
    fetcher: Fetcher
    inprogress: InProgress
    async_jobs: AsyncJobs
    _client: redis.Redis
    _jobs: Any
    _exchange: Exchange
    _flow: Flow
    _ledger: Ledger
    _running: dict[str, Work]
    _blocking: bool
    _active: int
    _parks: list[queue.SimpleQueue[bool]]
    #: The memory check (max_memory), if any: it retires the process when over the limit.
    after_job: Callable[[], None] | None

    def _fetch_loop(self) -> None:
        acks: list[bytes] = []
        failures = 0
        waited = False
        while True:
            finished, new_acks = self._collect()
            acks += new_acks
            if new_acks:  # jobs fed one at a time through a wait in Redis open it too
                self._flow.open()
            paused = self.quieted.is_set() or self.isolating.is_set()
            self._steer(finished, paused)
            if self._exchange.stop_asked:
                self.inprogress.acknowledge(acks)
                return
            # Also while a processor waits in Redis (the held job took no wait-marker's
            # place): the job given back is there for it, or for another process.
            self._give_back(paused)
            if self._blocking:  # a processor waits in Redis; it nudges when it is back
                # Jobs held or running still finish: the first acknowledgement wakes this
                # thread, and those handed in during its round trip go in the next one.
                self.inprogress.acknowledge(acks)
                acks = []
                self._doze(self.config.fetch_timeout)
                continue
            hungry = (not paused and self._ledger.owed > 0
                      and self._jobs.qsize() <= self._ledger.low)
            if self._hold_back(hungry, waited, acks):
                waited = True
                continue
            waited = False
            try:
                owed = max(self._ledger.owed, 0)
                works = self._fetch(owed, acks)
                acks = []  # sent: never resend them after a later error
                failures = 0
            except redis.RedisError as exc:
                failures += 1
                self._fetch_failed(exc, failures)
                continue
            self._ledger.fetched(Round(owed, len(works), self._jobs.qsize(),
                                       len(self._exchange.done)), self._active)
            for work in works:
                self._jobs.put(work)
            if self.inprogress.suspicious:
                self.inprogress.reconcile([*self._running.values(), *works,
                                           *self.async_jobs.works()])

    def _hold_back(self, hungry: bool, waited: bool, acks: list[bytes]) -> bool:
        """Wait instead of fetching now: once, when no job is owed, to let acknowledgements
        gather into one round; and after an outage until the lease is renewed (finished jobs
        are acknowledged meanwhile: that is always safe)."""
        if not self.lease_ok.is_set():
            if acks:
                self.inprogress.acknowledge(acks)
                acks.clear()
            self.lease_ok.wait(ACK_DELAY * 10)
            return True
        if hungry or waited:
            return False
        if acks:
            self._exchange.wait(ACK_DELAY)
        else:
            self._doze(self.config.fetch_timeout)
        return True

    def _give_back(self, paused: bool) -> None:
        """Hoarded jobs go back to the front of their queues, for an idle process to run now
        rather than wait here for a thread (see Ledger.hoarded)."""
        excess = 0 if paused else self._ledger.hoarded
        works = take_back(self._jobs, excess, keep=LISTEN) if excess else []
        if works:
            self.inprogress.requeue(works[::-1])  # the first of them to the very front
            self._ledger.given_back(len(works))

    def _doze(self, timeout: float) -> None:
        """Sleep until signalled or ``timeout``; the next acknowledgement handed in wakes
        this thread (an entry handed in before ``dozing`` was set sent no nudge: look first)."""
        self._exchange.dozing = True
        if not self._exchange.pending():
            self._exchange.wait(timeout)
        self._exchange.dozing = False

    def _steer(self, finished: int, paused: bool) -> None:
        """Apply the flow's buffer and active-thread figures at the end of each window."""
        if not self._flow.observe(finished):
            return
        self._ledger.resize()
        active = self.config.concurrency if paused else self._flow.active
        if active != self._active:
            log.debug("%d of %d threads take jobs", active, self.config.concurrency)
            self._set_active(active)

    def _set_active(self, active: int) -> None:
        previous, self._active = self._active, active
        for park in self._parks[previous:active]:  # call the parked ones back
            park.put(True)

    def _collect(self) -> tuple[int, list[bytes]]:
        """(jobs finished, acknowledgements to send); processors newly idle are owed a job."""
        finished, idle, acks = self._exchange.collect()
        self._ledger.owed += idle
        return finished, acks

    def _fetch(self, owed: int, acks: list[bytes]) -> list[Work]:
        if not owed and not acks:
            return []
        if self.quieted.is_set():
            self.fetcher.fetch(0, acks)
            return []
        if self.isolating.is_set():
            return self._fetch_suspect(owed, acks)
        started = time.monotonic()
        works = self.fetcher.fetch(owed, acks)
        self._flow.round_trip(time.monotonic() - started)
        if works:
            self._flow.open()
        if owed and not works:
            self._hand_over_the_wait()
        return works

    def _fetch_failed(self, exc: redis.RedisError, failures: int) -> None:
        if failures == 1:
            log.warning("Redis error while fetching, backing off: %s",
                        url_problems.readable(exc))
        self.inprogress.fetch_failed()  # reconcile() will look for lost replies
        if isinstance(exc, OUTAGE):
            self.lease_ok.clear()
        self.stopping.wait(min(0.1 * 2**failures, 2.0))

    def _over_memory(self) -> bool:
        """Check max_memory before a suspect runs (a job one death short of the dead set):
        in a process already over it (an async job's leak, checked only at the heartbeat),
        the retirement would count that death against it, for memory it never took."""
        if self.after_job is not None:
            self.after_job()  # retires the process (quiets it) when over the limit
        return self.quieted.is_set()

    def _hand_over_the_wait(self) -> None:
        """Nothing queued: one idle processor waits in Redis for the next job."""
        self._blocking = True
        self.inprogress.acknowledge(self._collect()[1])  # handed in before the wait
        self._ledger.owed -= 1  # the wait counts as a job handed out until the processor is back
        self._jobs.put(LISTEN)

    def _fetch_suspect(self, owed: int, acks: list[bytes]) -> list[Work]:
        self.fetcher.fetch(0, acks)
        # Nothing running and nothing held: every processor idle, the buffer untouched, and
        # no async job on the event loop (it holds no processor, but shares the process).
        alone = (owed == self.config.concurrency + self._ledger.buffer and not self._running
                 and not self.async_jobs.works())
        if not alone or self._over_memory():
            return []
        work = self.fetcher.take_suspect()
        if work is None:
            self.isolating.clear()
            release_quarantine(self._client, self.identity)
            log.warning("no quarantined job left that this process runs; fetching from the"
                        " queues again")
            self._exchange.signal(WAKE)  # look at the queues now
            return []
        return [work]
