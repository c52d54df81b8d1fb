"""The Manager: N processor threads fed by one fetcher thread.

Duties:
1. the fetcher moves as many jobs as there are idle processors into the in-progress list,
   and acknowledges finished jobs in the same round trip (one script call for many jobs);
2. when the queues are empty it blocks in Redis (BLMOVE) instead of polling;
3. quiet() stops fetching; stop(deadline) waits for running jobs, then pushes every job that
   has not finished back to the front of its queue;
4. a Redis outage never kills a thread: log once, back off, reconnect, reconcile.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, cast

import redis

from sidequest import connection, keys
from sidequest.config import Config
from sidequest.payload import loads
from sidequest.worker.fetch import Fetcher, Work
from sidequest.worker.logs import thread_id
from sidequest.worker.processor import Processor
from sidequest.worker.state import ProcessState
from sidequest.worker.threads import spawn
from sidequest.worker.waker import Waker

log = logging.getLogger("sidequest")


class Manager:
    def __init__(self, config: Config, identity: str, state: ProcessState) -> None:
        self.config = config
        self.identity = identity
        self.stopping = threading.Event()  # set at stop(): give up waiting on Redis
        self.quieted = threading.Event()
        self.isolating = threading.Event()  # running quarantined suspects, one at a time
        self._client = connection.new_client(retries=0, socket_timeout=config.fetch_timeout + 5)
        self.fetcher = Fetcher(config, identity, self._client)
        self._waker = Waker(self._client, [keys.queue(name) for name in config.queue_names])
        self.processor = Processor(config, identity, connection.new_client(retries=0), state,
                                   self.stopping)
        # One lock, three wait queues: waking only the thread that has something to do
        # matters, since a notify_all per job would wake every processor (a thundering herd).
        self._cond = threading.Lock()
        self._work_ready = threading.Condition(self._cond)  # processors wait for a job
        self._fetcher_wake = threading.Condition(self._cond)  # the fetcher waits for demand
        self._finished = threading.Condition(self._cond)  # stop() waits for running jobs
        self._pending: collections.deque[Work] = collections.deque()
        self._acks: list[bytes] = []
        self._idle = 0
        self._running: dict[str, Work] = {}
        self._blocking = False
        self._done = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.config.concurrency):
            self._threads.append(spawn(self._process_loop, f"sidequest-processor-{i}",
                                       self.stopping))
        self._threads.append(spawn(self._fetch_loop, "sidequest-fetcher", self.stopping))

    def quiet(self) -> None:
        """Stop fetching; running jobs finish, prefetched ones go back to their queues."""
        if self.quieted.is_set():
            return
        self.quieted.set()
        self._waker.interrupt()
        with self._cond:
            unstarted = list(self._pending)
            self._pending.clear()
            self._fetcher_wake.notify_all()
        self._requeue(unstarted)

    def stop(self, deadline: float) -> bool:
        """Quiet, wait until ``deadline`` (monotonic) for running jobs, requeue the rest.

        Returns True when every processor finished in time.
        """
        self.quiet()
        with self._cond:
            while self._running and time.monotonic() < deadline:
                self._finished.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            self._done = True
            leftovers = list(self._running.values())
            acks, self._acks = self._acks, []
            self._work_ready.notify_all()
            self._fetcher_wake.notify_all()
        self.stopping.set()
        self._flush(acks)
        if leftovers:
            log.warning("%d jobs still running at the shutdown deadline; pushing them back",
                        len(leftovers))
        self._requeue_all()
        # The fetcher may sit in a blocking call for up to fetch_timeout; wait for it so that
        # nothing of ours talks to Redis after stop() returns. Processors that are still
        # running jobs are left behind on purpose (their jobs are back in the queues).
        self._fetcher_thread().join(self.config.fetch_timeout + 1)
        self._waker.dispose()  # only now: the fetcher may have been waiting on it
        return not leftovers

    def _fetcher_thread(self) -> threading.Thread:
        return self._threads[-1]

    @property
    def busy(self) -> int:
        return len(self._running)

    def isolate(self) -> None:
        """Stop fetching from the queues; once every running job has finished, run the
        quarantined suspects one at a time, each alone, until the quarantine is empty."""
        if not self.isolating.is_set():
            log.warning("running quarantined jobs one at a time, each alone in this process")
        self.isolating.set()
        with self._cond:
            self._fetcher_wake.notify()

    # -- processor side ----------------------------------------------------------------

    def _take(self, tid: str) -> Work | None:
        with self._cond:
            self._idle += 1
            self._fetcher_wake.notify()
            while not self._pending and not self._done:
                self._work_ready.wait()
            self._idle -= 1
            if self._done and not self._pending:
                return None
            work = self._pending.popleft()
            self._running[tid] = work
            return work

    def _finish(self, tid: str, work: Work, ack: bool) -> None:
        with self._cond:
            del self._running[tid]
            direct = ack and (self._blocking or self.quieted.is_set())
            if ack and not direct:
                self._acks.append(work.raw)
            self._fetcher_wake.notify()
            self._finished.notify_all()
        if direct:
            # The fetcher is parked in a blocking call or gone: acknowledge now rather than
            # leave a finished job where a crash would run it again.
            self.processor.write(lambda pipe: pipe.lrem(self.fetcher.inprogress, 1, work.raw))

    def _process_loop(self) -> None:
        tid = thread_id()
        while True:
            work = self._take(tid)
            if work is None:
                return
            ack = False
            try:
                ack = self.processor.run(work, tid)
            except BaseException:  # the processor handles job errors; this is our own bug
                log.exception("internal error running a job; it stays in progress for recovery")
            finally:
                self._finish(tid, work, ack)

    # -- fetcher side ------------------------------------------------------------------

    def _wanted(self) -> tuple[int, list[bytes]]:
        """Wait until there is something to do: idle processors to feed, or acks to send."""
        with self._cond:
            while True:
                want = 0 if self.quieted.is_set() else self._idle - len(self._pending)
                if self.isolating.is_set():
                    alone = not self._running and not self._pending
                    want = 1 if alone and want > 0 else 0
                if want > 0 or self._acks or self._done or self.quieted.is_set():
                    acks, self._acks = self._acks, []
                    return max(want, 0), acks
                self._fetcher_wake.wait()

    def _fetch_loop(self) -> None:
        failures = 0
        while not self._done:
            want, acks = self._wanted()
            if self.quieted.is_set() and not acks:
                return
            try:
                if self.isolating.is_set():
                    works = self._fetch_suspect(want, acks)
                    acks = []
                else:
                    works = self.fetcher.fetch(want, acks)
                    acks = []  # sent: never resend them after a later error
                    if want and not works:
                        works = self._block()
                self._hand_out(works)  # before reconciling, so these count as known
                if failures:
                    log.warning("Redis is reachable again; fetching resumes")
                    self._reconcile()
                failures = 0
            except redis.RedisError as exc:
                with self._cond:
                    self._acks[:0] = acks
                failures += 1
                if failures == 1:
                    log.warning("Redis error while fetching, backing off: %s", exc)
                self.stopping.wait(min(0.1 * 2**failures, 2.0))

    def _fetch_suspect(self, want: int, acks: list[bytes]) -> list[Work]:
        self._flush(acks)
        if not want:
            return []
        work = self.fetcher.take_suspect()
        if work is None:
            self.isolating.clear()
            self._client.eval(_RELEASE, 1, keys.QUARANTINE_LOCK, self.identity)
            log.warning("quarantine empty; fetching from the queues again")
            return []
        return [work]

    def _block(self) -> list[Work]:
        """Nothing queued: wait in Redis for the next job instead of polling."""
        with self._cond:
            self._blocking = True
            acks, self._acks = self._acks, []
        self._flush(acks)  # from here on processors acknowledge directly
        try:
            if len(self.config.queues) == 1:
                work = self.fetcher.wait(self.config.fetch_timeout)
                return [work] if work is not None else []
            return self._wait_several()
        finally:
            with self._cond:
                self._blocking = False

    def _wait_several(self) -> list[Work]:
        """Several queues: sleep until Redis says one of them changed, then look again."""
        if not self._waker.arm():
            work = self.fetcher.wait(self.config.idle_wait)  # polling fallback
            return [work] if work is not None else []
        with self._cond:
            want = max(self._idle - len(self._pending), 1)
        works = self.fetcher.fetch(want, [])  # a push may have landed before tracking began
        if not works and self._waker.wait(self.config.fetch_timeout):
            works = self.fetcher.fetch(want, [])
        if works:
            self._waker.disarm()
        return works

    def _hand_out(self, works: list[Work]) -> None:
        if not works:
            return
        with self._cond:
            if not self.quieted.is_set():
                self._pending.extend(works)
                self._work_ready.notify(len(works))
                return
        self._requeue(works)  # fetched just as we were told to quiet

    # -- recovery ----------------------------------------------------------------------

    def _known(self) -> collections.Counter[bytes]:
        with self._cond:
            raws = [w.raw for w in self._pending] + [w.raw for w in self._running.values()]
            return collections.Counter(raws + self._acks)

    def _reconcile(self) -> None:
        """After an outage: a fetch whose reply was lost left jobs in our in-progress list
        that no thread knows about. Push those back so they do not wait for our death."""
        stored = cast(list[bytes], self._client.lrange(self.fetcher.inprogress, 0, -1))
        unknown = collections.Counter(stored) - self._known()
        if unknown:
            orphans = [Work(_queue_of(raw), raw) for raw in unknown.elements()]
            log.warning("requeueing %d jobs whose fetch reply was lost", len(orphans))
            self._requeue(orphans)

    def _requeue(self, works: list[Work]) -> None:
        """Move jobs from our in-progress list back to the front of their queues."""
        if not works:
            return

        args: list[Any] = []
        for work in works:
            args += [work.queue, work.raw]
        script = connection.script("putback")
        keys_ = [self.fetcher.inprogress, keys.QUEUES]
        self.processor.write(lambda pipe: script(keys=keys_, args=args, client=pipe))

    def _flush(self, acks: list[bytes]) -> None:
        if not acks:
            return

        def commands(pipe: Any) -> None:
            for raw in acks:
                pipe.lrem(self.fetcher.inprogress, 1, raw)

        self.processor.write(commands)

    def _requeue_all(self) -> None:
        """Whatever is still in our in-progress list goes back to its queue (shutdown)."""
        script = connection.script("requeue")
        try:
            script(
                keys=[self.fetcher.inprogress, keys.lease(self.identity), keys.POISON,
                      keys.QUEUES, keys.SQ_PROCESSES, keys.QUARANTINE],
                args=["stop", 0, 0, self.identity, max(1, self.config.max_deaths - 1)],
                client=self._client,
            )
        except redis.RedisError as exc:
            log.error("could not push unfinished jobs back (%s); the reaper of another process"
                      " will recover them when this one's lease expires", exc)


#: Delete a lock only if we still hold it.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"


def _queue_of(raw: bytes) -> str:
    try:
        queue = loads(raw).get("queue")
    except (ValueError, AttributeError):
        queue = None
    return queue if isinstance(queue, str) and queue else "default"
