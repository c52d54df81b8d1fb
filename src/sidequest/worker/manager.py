"""The Manager: N processor threads fed by one fetcher thread.

Duties:
1. the fetcher moves as many jobs as there are idle processors into the in-progress list,
   and acknowledges finished jobs in the same round trip (one script call for many jobs);
2. when the queues are empty it blocks in Redis (BLMOVE, or a wake-up for several queues)
   instead of polling;
3. quiet() stops fetching; stop(deadline) waits for running jobs, then pushes every job that
   has not finished back to the front of its queue;
4. isolate() runs quarantined suspects one at a time, each alone in the process;
5. a Redis outage never kills a thread: log once, back off, reconnect; reconcile() finds
   jobs whose fetch reply was lost.

Threads meet only through two ``queue.SimpleQueue``s (C code, no Python-level condition
variables, which cost more than a Redis round trip under the GIL): processors post "idle,
and here is my last job to acknowledge" events to the fetcher, which posts jobs back.
"""

from __future__ import annotations

import collections
import logging
import queue
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
#: Posted to the fetcher (compared by identity, never equal to a payload): stop() asks it to
#: flush what is left and exit; _WAKE makes it look again (quiet, isolate).
_STOP = b"stop"
_WAKE = b"wake"
#: Seconds of work a process may hold beyond its running jobs when Redis is near.
HOLD = 0.02


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
        self._jobs: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._events: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._running: dict[str, Work] = {}  # tid -> job; single dict ops are GIL-atomic
        self._blocking = False  # the fetcher is parked in Redis: processors ack directly
        # Jobs the fetcher may still hand out: one per idle processor, plus the prefetch
        # buffer (the fetcher's own count; each processor event frees one).
        self._owed = 0
        self._buffer = 0  # jobs to hold besides the running ones, adapted by _adapt()
        self._rate = 0.0  # jobs finished per second (moving average)
        self._rtt = 0.0  # seconds per fetch round trip (moving average)
        self._last_round = time.monotonic()
        self._finished_in_window = 0
        self._strays: collections.Counter[bytes] | None = None
        self._reconcile_at = 0.0
        self._threads: list[threading.Thread] = []
        self._thread_of: dict[str, threading.Thread] = {}
        self._fetcher_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.config.concurrency):
            self._threads.append(spawn(self._process_loop, f"sidequest-processor-{i}",
                                       self.stopping))
        self._fetcher_thread = spawn(self._fetch_loop, "sidequest-fetcher", self.stopping)
        self._threads.append(self._fetcher_thread)

    def quiet(self) -> None:
        """Stop fetching; running jobs finish, prefetched ones go back to their queues."""
        if self.quieted.is_set():
            return
        self.quieted.set()
        self._waker.interrupt()
        self._events.put(_WAKE)
        self._requeue(self._drain_jobs())

    def stop(self, deadline: float) -> bool:
        """Quiet, wait until ``deadline`` (monotonic) for running jobs, requeue the rest.

        Returns True when every processor finished in time.
        """
        self.quiet()
        while self._running and time.monotonic() < deadline:
            time.sleep(0.02)  # shutdown only: a short poll keeps the hot path lock-free
        stuck = dict(self._running)
        leftovers = list(stuck.values())
        self._requeue(self._drain_jobs())  # fetched while we were quieting
        for _ in range(self.config.concurrency):
            self._jobs.put(None)
        for tid, thread in list(self._thread_of.items()):
            if tid not in stuck:  # it posts its last acknowledgement, then exits
                thread.join(1.0)
        self._events.put(_STOP)
        if self._fetcher_thread is not None:  # it flushes the last acknowledgements
            self._fetcher_thread.join(self.config.fetch_timeout + 2)
        self.stopping.set()
        self._flush(self._drain_acks())
        if leftovers:
            log.warning("%d jobs still running at the shutdown deadline; pushing them back",
                        len(leftovers))
        self._requeue_all()
        self._waker.dispose()  # only now: the fetcher may have been waiting on it
        return not leftovers

    @property
    def busy(self) -> int:
        return len(self._running)

    def isolate(self) -> None:
        """Stop fetching from the queues; once every running job has finished, run the
        quarantined suspects one at a time, each alone, until the quarantine is empty."""
        if not self.isolating.is_set():
            log.warning("running quarantined jobs one at a time, each alone in this process")
        self.isolating.set()
        self._events.put(_WAKE)

    # -- processors --------------------------------------------------------------------

    def _process_loop(self) -> None:
        tid = thread_id()
        self._thread_of[tid] = threading.current_thread()
        ack: bytes | None = None
        while True:
            self._events.put(ack)  # idle now, and this job is done
            work = self._jobs.get()
            if work is None:
                return
            if self.quieted.is_set():  # fetched just as we were told to quiet: not ours now
                self._requeue([work])
                ack = None
                continue
            self._running[tid] = work
            ok = False
            try:
                ok = self.processor.run(work, tid)
            except BaseException:  # the processor handles job errors; this is our own bug
                log.exception("internal error running a job; it stays in progress for recovery")
            finally:
                del self._running[tid]
            ack = work.raw if ok else None
            if ack is not None and (self._blocking or self.quieted.is_set()):
                # Nobody will carry the acknowledgement soon: send it now, rather than
                # leave a finished job where a crash would run it again.
                self._flush([ack])
                ack = None

    # -- fetcher -----------------------------------------------------------------------

    def _fetch_loop(self) -> None:
        acks: list[bytes] = []
        failures = 0
        while True:
            paused = self.quieted.is_set() or self.isolating.is_set()
            wanted = self._owed > 0 and not paused
            stop, idle, new_acks = self._collect(block=not acks and not wanted)
            self._owed += idle
            self._adapt(idle)
            acks += new_acks
            if stop:
                self._flush(acks)
                return
            try:
                works = self._fetch(max(self._owed, 0), acks)
                acks = []  # sent: never resend them after a later error
                failures = 0
            except redis.RedisError as exc:
                failures += 1
                self._fetch_failed(exc, failures)
                continue
            self._owed -= len(works)
            for work in works:
                self._jobs.put(work)
            if self._strays is not None:
                self._reconcile_safely(works)

    def _adapt(self, finished: int) -> None:
        """Hold enough fetched jobs to keep the threads busy while the next round trip is
        on its way, at most ``prefetch``. Short jobs, and a slow network, get a deep buffer;
        slow jobs get none, so one process does not sit on work an idle one could run."""
        self._finished_in_window += finished
        now = time.monotonic()
        elapsed = now - self._last_round
        if elapsed < 0.05:  # measure the rate over windows long enough to mean something
            return
        self._rate = 0.5 * self._rate + 0.5 * (self._finished_in_window / elapsed)
        self._last_round, self._finished_in_window = now, 0
        # What the threads finish in twice a round trip, or in 20 ms when Redis is near (a
        # held job then waits 20 ms at most, and the threads rarely wait for the fetcher).
        target = min(self.config.prefetch_count, int(self._rate * max(2 * self._rtt, HOLD)))
        self._owed += target - self._buffer
        self._buffer = target

    def _collect(self, block: bool) -> tuple[bool, int, list[bytes]]:
        """Read processor events: (stop asked, processors newly idle, acks to send)."""
        events: list[bytes | None] = []
        try:
            if block:
                events.append(self._events.get(timeout=self.config.fetch_timeout))
            while True:
                events.append(self._events.get_nowait())
        except queue.Empty:
            pass
        stop = any(e is _STOP for e in events)
        mine = [e for e in events if e is not _STOP and e is not _WAKE]
        return stop, len(mine), [e for e in mine if e]

    def _fetch(self, owed: int, acks: list[bytes]) -> list[Work]:
        if self.quieted.is_set():
            self.fetcher.fetch(0, acks)
            return []
        if self.isolating.is_set():
            return self._fetch_suspect(owed, acks)
        started = time.monotonic()
        works = self.fetcher.fetch(owed, acks)
        self._rtt = 0.8 * self._rtt + 0.2 * (time.monotonic() - started)
        if owed and not works:
            works = self._block()
        return works

    def _reconcile_safely(self, fetched: list[Work]) -> None:
        try:
            self._reconcile(fetched)
        except redis.RedisError as exc:
            log.warning("could not look for jobs whose fetch reply was lost: %s", exc)

    def _fetch_failed(self, exc: redis.RedisError, failures: int) -> None:
        if failures == 1:
            log.warning("Redis error while fetching, backing off: %s", exc)
        if self._strays is None:
            self._strays = collections.Counter()  # _reconcile() will look for lost replies
        self.stopping.wait(min(0.1 * 2**failures, 2.0))

    def _block(self) -> list[Work]:
        """Nothing queued: wait in Redis for the next job instead of polling."""
        self._blocking = True
        try:
            stop, idle, acks = self._collect(block=False)
            self._owed += idle  # processors that went idle meanwhile are owed a job too
            if stop:
                self._events.put(_STOP)  # for the main loop to see
            self._flush(acks)  # from here on processors acknowledge directly
            if len(self.config.queues) == 1:
                work = self.fetcher.wait(self.config.fetch_timeout)
                return [work] if work is not None else []
            return self._wait_several()
        finally:
            self._blocking = False

    def _wait_several(self) -> list[Work]:
        """Several queues: sleep until Redis says one of them changed, then look again."""
        if not self._waker.arm():
            work = self.fetcher.wait(self.config.idle_wait)  # polling fallback
            return [work] if work is not None else []
        works = self.fetcher.fetch(1, [])  # a push may have landed before tracking began
        if not works and self._waker.wait(self.config.fetch_timeout):
            works = self.fetcher.fetch(1, [])
        if works:
            self._waker.disarm()
        return works

    # -- quarantine --------------------------------------------------------------------

    def _fetch_suspect(self, owed: int, acks: list[bytes]) -> list[Work]:
        self.fetcher.fetch(0, acks)
        # Nothing running and nothing held: every processor idle, the buffer untouched.
        alone = owed == self.config.concurrency + self._buffer and not self._running
        if not alone:
            return []
        work = self.fetcher.take_suspect()
        if work is None:
            self.isolating.clear()
            self._client.eval(_RELEASE, 1, keys.QUARANTINE_LOCK, self.identity)
            log.warning("quarantine empty; fetching from the queues again")
            self._events.put(_WAKE)  # look at the queues now
            return []
        return [work]

    # -- recovery ----------------------------------------------------------------------

    def _reconcile(self, fetched: list[Work]) -> None:
        """After fetch errors, a fetch whose reply was lost leaves a job in our in-progress
        list that no thread knows about. Runs in the fetcher after a successful fetch, at
        most once a second: a stray seen on two passes in a row is pushed back (a job in
        transit between threads, or an acknowledgement on its way, is never a stray that
        long, since the fetcher sends acknowledgements on every round)."""
        previous = self._strays
        if previous is None or time.monotonic() < self._reconcile_at:
            return
        self._reconcile_at = time.monotonic() + 1.0
        stored = cast(list[bytes], self._client.lrange(self.fetcher.inprogress, 0, -1))
        known = collections.Counter(
            [w.raw for w in list(self._running.values())] + [w.raw for w in fetched])
        strays = collections.Counter(stored) - known
        orphans = strays & previous
        remaining = strays - orphans
        self._strays = remaining if remaining else None
        if orphans:
            log.warning("requeueing %d jobs whose fetch reply was lost", sum(orphans.values()))
            self._requeue([Work(_queue_of(raw), raw) for raw in orphans.elements()])

    def _drain_jobs(self) -> list[Work]:
        works = []
        try:
            while True:
                work = self._jobs.get_nowait()
                if work is not None:
                    works.append(work)
        except queue.Empty:
            return works

    def _drain_acks(self) -> list[bytes]:
        return self._collect(block=False)[2]

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
        queue_name = loads(raw).get("queue")
    except (ValueError, AttributeError):
        queue_name = None
    return queue_name if isinstance(queue_name, str) and queue_name else "default"
