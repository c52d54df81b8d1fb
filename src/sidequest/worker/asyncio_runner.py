"""Jobs whose ``perform`` is ``async def``: one event loop per worker process, on a thread of
its own, running up to ``async_concurrency`` of them at once beside the processor threads.

A processor thread fetches and decodes an async job as any other, then hands it to the loop
and is free for the next job; the job stays in the process's in-progress list until it ends,
so a crash loses nothing (the reaper puts it back). When it ends, the outcome is recorded as
for a thread job: a success is acknowledged by the manager's next fetch round, a failure
goes through the retry rules in the same transaction as its acknowledgement.

Server middleware runs around an async job on the loop when every middleware in the chain
has an ``acall`` coroutine form (the built-in ones do). A plain (sync) middleware still
works: the processor thread then runs the chain and waits for the coroutine, which keeps
the middleware's "around" meaning but holds a thread per running async job.

A coroutine that blocks the loop (a sync call inside ``async def``) stalls every other async
job; a watchdog notices when the loop woke over 100 ms late and names the jobs running then
(or that ended in the late wake-up's interval).
One that blocks it past its timeout retires the process (worker/timeouts.py); the stop then
does not wait for async jobs that a blocked loop cannot finish or cancel.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any

from sidequest.limiter import ASYNC_JOBS_THREAD  # a blocking `with` is refused there

log = logging.getLogger("sidequest")

#: The loop is "blocked" when a 50 ms sleep ends this much later than asked.
BLOCKED = 0.1
TICK = 0.05
#: A loop that has not woken for this long is stuck: nothing on it can end or be cancelled.
STUCK = 1.0


#: Seconds between looks at a stop while a processor thread waits for room on the loop.
ROOM_WAIT = 0.1


class _Entry:
    """An async job handed to the loop: its class name, its future once the loop has it,
    and whether it has a slot yet (it runs) or waits for one."""

    __slots__ = ("future", "jid", "name", "started")

    def __init__(self, name: str, jid: str) -> None:
        self.name = name
        self.jid = jid  # the job's own: runs that share it are listed under run ids
        self.future: Future[Any] | None = None
        self.started = False


class AsyncRunner:
    def __init__(self, limit: int, waiting: int = 0) -> None:
        self.limit = limit
        # A job waits for one of the ``limit`` slots on the loop, not in a processor thread:
        # a thread held there could run no plain job, nor see a stop. Up to ``waiting`` jobs
        # wait so; past that a thread waits for room (here), so that a flood of async jobs
        # is not pulled out of Redis into this one process.
        self._room = threading.BoundedSemaphore(limit + waiting)
        self._slots: asyncio.Semaphore | None = None  # made on the loop, which it belongs to
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        #: run id (the jid, or jid#n for a second run of it) -> its entry, for stop(), busy
        #: and the blocked-loop warning.
        self._running: dict[str, _Entry] = {}
        #: Names of jobs that ended since the watchdog's last wake-up (loop thread only): a
        #: job that blocks the loop and ends in the same step is gone from _running by the
        #: time the watchdog wakes, yet it is the one to name.
        self._ended: set[str] = set()
        self._beat = time.monotonic()  # the watch coroutine's last wake-up

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._started:
            if self._loop is None:
                self._beat = time.monotonic()  # not "stuck" before its first tick
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._serve, name=ASYNC_JOBS_THREAD,
                                                daemon=True)
                self._thread.start()
            return self._loop

    def _serve(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        watch = self._loop.create_task(self._watch())
        try:
            self._loop.run_forever()
        finally:
            # Ended here rather than left pending: a pending task is reported ("Task was
            # destroyed but it is pending") when the stopped loop is collected.
            watch.cancel()
            self._loop.run_until_complete(asyncio.gather(watch, return_exceptions=True))

    async def _watch(self) -> None:
        while True:
            asked = self._beat = time.monotonic()
            await asyncio.sleep(TICK)
            late = time.monotonic() - asked - TICK
            ended, self._ended = self._ended, set()
            if late > BLOCKED:
                names = sorted({entry.name for entry in list(self._running.values())
                                if entry.started} | ended)
                _blocked(late, names)

    def submit(self, jid: str, name: str, work: Callable[[], Coroutine[Any, Any, Any]],
               done: Callable[[BaseException | None], Awaitable[None]],
               job_jid: str | None = None) -> bool:
        """Run ``work()`` on the loop once one of its slots is free, then ``done(exception or
        None)`` there (a CancelledError if it was cancelled while it waited). Waits in the
        calling thread only while the loop has no room even to hold it. False, with nothing
        run, once the runner is closing (a quiet or a stop): the caller puts the job back."""
        while not self._room.acquire(timeout=ROOM_WAIT):
            if self._closing.is_set():
                return False
        if self._closing.is_set():
            self._room.release()
            return False
        # Listed before the loop can see the job: a job that ends before this thread runs
        # again must find its entry to remove (listed after, it stayed "busy" for good, and
        # a stop waited its whole deadline for it).
        entry = self._running[jid] = _Entry(name, job_jid or jid)
        try:
            entry.future = asyncio.run_coroutine_threadsafe(
                self._guard(jid, entry, work, done), self.loop)
        except BaseException:
            if self._running.get(jid) is entry:
                del self._running[jid]
            self._room.release()
            raise
        return True

    async def _guard(self, jid: str, entry: _Entry,
                     work: Callable[[], Coroutine[Any, Any, Any]],
                     done: Callable[[BaseException | None], Awaitable[None]]) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        error: BaseException | None = None
        try:
            async with self._slots:
                if self._closing.is_set():  # quieted while it waited: it goes back
                    raise asyncio.CancelledError
                entry.started = True
                await work()
        except GeneratorExit:
            # Closed unfinished by the garbage collector: the loop stopped under a job that
            # ignored its cancellation. Nothing can be recorded without a loop; the job is
            # in the in-progress list, which the stop pushed back.
            self._forget(jid, entry)
            raise
        except BaseException as exc:  # a job's exception, or its cancellation at stop
            running = asyncio._get_running_loop()
            if running is None or running is not self._loop:
                # The same close, where the job's own cleanup raised instead (an await in a
                # finally): no outcome can be recorded either, and trying would raise out of
                # the collector ("no running event loop"), or run on whatever loop the
                # collecting thread runs.
                self._forget(jid, entry)
                return
            error = exc
        try:
            await done(error)
        finally:
            self._forget(jid, entry)

    def _forget(self, jid: str, entry: _Entry) -> None:
        # Its own entry only: a run of the same id listed since (its job's end is recorded
        # after the outcome's writes) must stay listed, to be cancelled or waited for.
        if self._running.get(jid) is entry:
            del self._running[jid]
            if entry.started:
                self._ended.add(entry.name)
        self._room.release()

    def listed(self, run_id: str) -> bool:
        """A run of this id is handed to the loop and not yet forgotten."""
        return run_id in self._running

    def close_intake(self) -> None:
        """A quiet or a stop: hand no more jobs to the loop, and cancel those that wait for a
        slot (they never started: their ``done`` puts them back in their queues)."""
        self._closing.set()
        # On the loop: a job whose submit passed the check above just now is listed, and its
        # task scheduled, by then (or it sees the flag when it gets a slot).
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._cancel_waiting)

    def _cancel_waiting(self) -> None:
        self.cancel([jid for jid, entry in list(self._running.items()) if not entry.started])

    def wait_result(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and wait for it here (the sync-middleware path)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit_coroutine(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Run ``coro`` on the loop; its future, to wait for in steps (the lifecycle hooks)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @property
    def busy(self) -> int:
        """Async jobs running now (not those waiting for a slot)."""
        return len(self.started())

    @property
    def closing(self) -> bool:
        """Quieted or stopping: a job cancelled now was cancelled by the stop."""
        return self._closing.is_set()

    @property
    def stuck(self) -> bool:
        """The loop is blocked (by a sync call in a job): no async job can end now."""
        return self._loop is not None and time.monotonic() - self._beat > STUCK

    @property
    def thread_ident(self) -> int | None:
        """The loop's thread, whose stack shows a job that blocks it."""
        return self._thread.ident if self._thread is not None else None

    def blocking(self) -> str | None:
        """The jid of the job whose code holds the loop's thread now (a blocking call inside
        ``async def``), read from that thread's stack, since a blocked loop can tell nothing;
        None when no job's code is on it."""
        thread = self._thread
        frame = sys._current_frames().get(thread.ident) if thread and thread.ident else None
        while frame is not None:
            if frame.f_code is _GUARD_CODE:  # every job runs under its own _guard
                jid = frame.f_locals.get("jid")
                return jid if isinstance(jid, str) else None
            frame = frame.f_back
        return None

    def jid_of(self, rid: str) -> str:
        """The job's own jid of the run ``rid``, for the log (a run id is the jid made
        unique: see AsyncJobs)."""
        entry = self._running.get(rid)
        return entry.jid if entry is not None else rid

    def running(self) -> list[str]:
        """Every job handed to the loop, started or waiting for a slot."""
        return list(self._running)

    def started(self) -> list[str]:
        """The jobs that have their slot: they run."""
        return [jid for jid, entry in list(self._running.items()) if entry.started]

    def cancel(self, jids: list[str]) -> None:
        """Cancel these jobs (shutdown past its deadline, or waiting ones at a stop): each
        running one sees CancelledError, and its ``done`` is told so (the job is pushed
        back, not failed)."""
        for jid in jids:
            entry = self._running.get(jid)
            if entry is not None and entry.future is not None:
                entry.future.cancel()

    def cancel_started(self, jids: list[str]) -> None:
        """Cancel those of these jobs that run (sidequest.api.cancel): a waiting one is left
        to be dropped when it gets its slot, as any cancelled job is before it starts."""
        wanted = set(jids)
        self.cancel([rid for rid, entry in list(self._running.items())
                     if entry.started and entry.jid in wanted])

    def close(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None and not self.stuck:  # a stuck one ends with us
                self._thread.join(5)


_GUARD_CODE = AsyncRunner._guard.__code__


def _blocked(late: float, names: list[str]) -> None:
    """Say the loop was late, and why it may have been: a job's blocking call, or, with none
    running, something outside the jobs (a busy host, a thread holding the interpreter)."""
    if names:
        log.warning("the event loop of async jobs was blocked for %.0f ms; async jobs running"
                    " then: %s (a blocking call inside async def perform stalls them all: use"
                    " await, or asyncio.to_thread)", late * 1000, ", ".join(names))
    else:
        log.warning("the event loop of async jobs was held up for %.0f ms with no async job"
                    " running: the host was busy, or a thread held the interpreter (a C call"
                    " that keeps the GIL)", late * 1000)
