"""Time limits of thread jobs (``timeout = seconds``).

A watchdog thread checks the running jobs' deadlines every 0.1 s. At a job's deadline it
raises ``sidequest.JobTimeout`` in the job's thread (``PyThreadState_SetAsyncExc``): the
exception surfaces at the job's next Python instruction, and the job fails under the usual
retry rules. A job stuck in C code or a system call never gets to that instruction: after
``GRACE`` more seconds the watchdog records one failure for it and retires the process (it
stops fetching, pushes its other jobs back and exits for its supervisor to restart it),
since a thread cannot be killed. Async jobs are timed by ``asyncio.wait_for`` instead; the
watchdog only keeps their deadlines, and one still running ``GRACE`` seconds past its deadline
(it blocks the event loop, so the cancellation cannot be delivered, or it swallows it) is stuck
in the same way.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any

from sidequest.errors import TIMEOUT_MESSAGE, JobTimeout, timeout_of_thread

log = logging.getLogger("sidequest")
#: Seconds a job gets to stop after its JobTimeout before the process retires.
GRACE = 5.0
TICK = 0.1


def seconds(value: Any) -> float | None:
    """A job's ``timeout`` as seconds, or None when it has none (absent, zero, not a number)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


@dataclass
class _Watched:
    jid: str
    thread: int  # the thread's ident
    deadline: float  # monotonic
    limit: float  # seconds
    lock: threading.Lock  # the watchdog's, which fires under it
    #: The frame of the call into the job's code: the failure's traceback starts below it.
    below: CodeType | None = None
    fired: float | None = None  # when JobTimeout was raised in it
    #: Where the job was when it fired, for the failure of a job that caught it and went on.
    stack: TracebackType | None = None
    told: bool = False  # that failure is raised already

    def raise_if_fired(self) -> None:
        """Fail a job that caught its JobTimeout (an `except Exception:`) and returned: it
        still ran past its limit, and that is a failure, not a success. Raised where the job
        returned, inside the middleware, so that what records outcomes there (metrics,
        traces) sees the failure; with the job's stack at its deadline, which names the
        line it was on. Under the watchdog's lock: it has fired, or it never will (the
        caller's watch ends first); a JobTimeout it raised that has not surfaced yet (the
        job returned at its deadline) is withdrawn, so that only this one is raised."""
        with self.lock:
            if self.fired is None or self.told:
                return
            self.told = True
            _raise_in(self.thread, None)
            stack, self.stack = self.stack, None  # its frames stay alive no longer than it
        raise JobTimeout(f"{TIMEOUT_MESSAGE} of {self.limit:g} s").with_traceback(stack)


class Timeouts:
    def __init__(self, on_stuck: Callable[[str], None]) -> None:
        #: Called (on the watchdog thread) with the jid of a job that ignored its timeout.
        self._on_stuck = on_stuck
        self._lock = threading.Lock()
        self._watched: dict[int, _Watched] = {}
        #: Async jobs: run id -> (when it is stuck (monotonic: its deadline plus GRACE), jid).
        self._async: dict[str, tuple[float, str]] = {}
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, jid: str, seconds: float,
              below: CodeType | None = None) -> Iterator[_Watched]:
        """Run the ``with`` body under a deadline of ``seconds``; the body calls the entry's
        ``raise_if_fired`` once the job returns (and it is called here again, in case).
        ``below``: the code of the call into the job, whose frames a caught timeout's
        traceback keeps (see stack_of)."""
        ident = threading.get_ident()
        entry = _Watched(jid, ident, time.monotonic() + seconds, seconds, self._lock, below)
        with self._lock:
            self._watched[ident] = entry
            self._start()
        timeout_of_thread.seconds = seconds  # the message of the JobTimeout raised in it
        try:
            yield entry
        except BaseException:
            entry.stack = None  # the job's own raise carries where it was
            raise
        finally:
            with self._lock:
                self._watched.pop(ident, None)
            timeout_of_thread.seconds = None
        entry.raise_if_fired()

    def watch_async(self, rid: str, seconds: float, jid: str | None = None) -> None:
        """An async job with a deadline of ``seconds`` started; ``unwatch_async`` when it ends.
        ``rid`` names its run (see AsyncJobs); ``jid``, the job's own, is what the log says."""
        with self._lock:
            self._async[rid] = (time.monotonic() + seconds + GRACE, jid or rid)
            self._start()

    def unwatch_async(self, rid: str) -> None:
        with self._lock:
            self._async.pop(rid, None)

    def _start(self) -> None:  # holding the lock
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sidequest-timeouts",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(TICK)
            with self._lock:
                self._tick(time.monotonic())

    def _tick(self, now: float) -> None:  # holding the lock; its locals (a fired entry,
        # which holds the job's frames) go when it returns, not at the next tick
        for entry in list(self._watched.values()):
            if entry.fired is None and now >= entry.deadline:
                entry.fired = now
                entry.stack = stack_of(entry.thread, entry.below)
                _raise_in(entry.thread, JobTimeout)
            elif entry.fired is not None and now - entry.fired > GRACE:
                del self._watched[entry.thread]
                self._stuck(entry.jid, "stuck in C code or a system call, or it "
                                       "caught the JobTimeout and went on")
        for rid, (limit, jid) in list(self._async.items()):
            if now >= limit:
                del self._async[rid]
                self._stuck(rid, "an async job that blocks the event loop or "
                                 "ignores its cancellation", jid)

    def _stuck(self, rid: str, why: str, jid: str | None = None) -> None:
        shown = jid or rid
        log.error("job %s did not stop %.0f s after its timeout (%s); retiring this process",
                  shown, GRACE, why, extra={"jid": shown})
        threading.Thread(target=self._on_stuck, args=(rid,), daemon=True).start()


def _raise_in(thread: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in ``thread`` at its next Python instruction; None withdraws one raised
    so that has not surfaced yet."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread),
                                               ctypes.py_object(exc) if exc else None)


def stack_of(ident: int | None, below: CodeType | None = None) -> TracebackType | None:
    """Where the thread ``ident`` is now, as a traceback (outermost call first): the failure
    of a job stuck there then names the line it is stuck on, in its log line and its
    backtrace, as a timeout that landed does. Read while the thread stays stuck. With
    ``below``, only the frames inside the call running that code: the outer ones are the
    worker's, which go on to run other jobs (an error reporter reading their locals would
    see those)."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    stack = None
    try:
        while frame is not None and frame.f_code is not below:  # innermost first, each
            # linked before the ones inside it
            stack = TracebackType(stack, frame, frame.f_lasti, frame.f_lineno or 0)
            frame = frame.f_back
    except (TypeError, ValueError):  # a frame that cannot be shown: the failure goes on
        return None
    return stack
