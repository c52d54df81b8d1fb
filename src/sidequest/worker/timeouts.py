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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sidequest.errors import TIMEOUT_MESSAGE, JobTimeout

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
    fired: float | None = None  # when JobTimeout was raised in it


class Timeouts:
    def __init__(self, on_stuck: Callable[[str], None]) -> None:
        #: Called (on the watchdog thread) with the jid of a job that ignored its timeout.
        self._on_stuck = on_stuck
        self._lock = threading.Lock()
        self._watched: dict[int, _Watched] = {}
        #: Async jobs: jid -> when it is stuck (monotonic: its deadline plus GRACE).
        self._async: dict[str, tuple[float, str]] = {}  # run id -> (deadline, jid)
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, jid: str, seconds: float) -> Iterator[None]:
        """Run the ``with`` body under a deadline of ``seconds``."""
        ident = threading.get_ident()
        entry = _Watched(jid, ident, time.monotonic() + seconds)
        with self._lock:
            self._watched[ident] = entry
            self._start()
        try:
            yield
        finally:
            with self._lock:
                self._watched.pop(ident, None)
        if entry.fired is not None:
            # The job caught its JobTimeout (an `except Exception:`) and returned: it still
            # ran past its limit, and that is a failure, not a success.
            raise JobTimeout(TIMEOUT_MESSAGE)

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
            now = time.monotonic()
            with self._lock:
                for entry in list(self._watched.values()):
                    if entry.fired is None and now >= entry.deadline:
                        entry.fired = now
                        _raise_in(entry.thread)
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


def _raise_in(thread: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread),
                                               ctypes.py_object(JobTimeout))
