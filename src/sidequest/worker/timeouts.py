"""Time limits of thread jobs (``timeout = seconds``).

A watchdog thread checks the running jobs' deadlines every 0.1 s. At a job's deadline it
raises ``sidequest.JobTimeout`` in the job's thread (``PyThreadState_SetAsyncExc``): the
exception surfaces at the job's next Python instruction, and the job fails under the usual
retry rules. A job stuck in C code or a system call never gets to that instruction: after
``GRACE`` more seconds the watchdog records one failure for it and retires the process (it
stops fetching, pushes its other jobs back and exits for its supervisor to restart it),
since a thread cannot be killed. Async jobs are timed by ``asyncio.wait_for`` instead.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sidequest.errors import JobTimeout

log = logging.getLogger("sidequest")
#: Seconds a job gets to stop after its JobTimeout before the process retires.
GRACE = 5.0
TICK = 0.1


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
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, jid: str, seconds: float) -> Iterator[None]:
        """Run the ``with`` body under a deadline of ``seconds``."""
        ident = threading.get_ident()
        with self._lock:
            self._watched[ident] = _Watched(jid, ident, time.monotonic() + seconds)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sidequest-timeouts",
                                                daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._watched.pop(ident, None)

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
                        log.error("job %s did not stop %.0f s after its timeout (stuck in C "
                                  "code or a system call); retiring this process", entry.jid,
                                  GRACE)
                        threading.Thread(target=self._on_stuck, args=(entry.jid,),
                                         daemon=True).start()


def _raise_in(thread: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread),
                                               ctypes.py_object(JobTimeout))
