"""The worker's log handler: lines batched by a writer thread, or written at once by the
thread that logs (the -P supervisor's, which must have no other thread when it forks)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
import time

import pytest

from sidequest.worker.logs import BatchingHandler


def record(msg: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("sidequest", level, __file__, 1, msg, None, None)


def writers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sidequest-log"]


def test_without_background_a_line_is_written_at_once_and_no_thread_starts() -> None:
    before = writers()
    out = io.StringIO()
    handler = BatchingHandler(out, interval=60, background=False)
    assert writers() == before
    handler.handle(record("an info line"))
    assert out.getvalue() == "an info line\n"  # no thread would ever write it


def test_in_the_background_info_lines_wait_for_the_writer_and_close_ends_it() -> None:
    out = io.StringIO()
    handler = BatchingHandler(out, interval=60)  # the writer sleeps: nothing written by it
    thread = handler._thread
    assert thread is not None and thread.is_alive()
    handler.handle(record("queued"))
    assert out.getvalue() == ""
    handler.handle(record("a warning", logging.WARNING))  # warnings flush what is queued
    assert out.getvalue() == "queued\na warning\n"
    handler.handle(record("last"))
    started = time.monotonic()
    handler.close()
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert out.getvalue().endswith("a warning\nlast\n")


def test_counts_in_log_lines_read_as_english() -> None:
    from sidequest.worker.logs import counted

    assert [counted(n, "job") for n in (0, 1, 2)] == ["0 jobs", "1 job", "2 jobs"]
    assert counted(1, "poison pill") == "1 poison pill"


# A signal handler runs on the main thread between two steps of whatever it interrupted: here,
# inside the write of a line, which holds the handler's lock and the stream's.
_INTERRUPTED_WRITE = """
import io, logging, signal, sys
from sidequest.worker.logs import BatchingHandler, LineSafeStream

class Interrupting(io.StringIO):
    fired = False

    def write(self, text):
        written = super().write(text)
        if not Interrupting.fired:
            Interrupting.fired = True
            signal.raise_signal(signal.SIGUSR1)  # its handler runs before this returns
        return written

out = Interrupting()
handler = BatchingHandler(LineSafeStream(out), background=sys.argv[1] == "background")
logger = logging.getLogger("sidequest.test")
logger.handlers[:] = [handler]
logger.propagate = False
signal.signal(signal.SIGUSR1, lambda *_: logger.warning("the handler's line"))
logger.warning("the line being written")
handler.close()
sys.stdout.write(out.getvalue())
"""


@pytest.mark.parametrize("mode", ["background", "at-once"])
def test_a_signal_handler_that_logs_during_a_write_does_not_hang_the_process(mode: str) -> None:
    """TTIN's thread dump, or a second Ctrl-C's warning, logged while the main thread was
    writing a line: waiting for the lock that same thread holds hung the worker for good (its
    stop then ended by the watchdog's kill). The handler's line is written after the other."""
    done = subprocess.run([sys.executable, "-c", _INTERRUPTED_WRITE, mode],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the line being written\nthe handler's line\n", done.stderr


# The main thread prints (holding the standard output's lock) while a job's thread flushes a
# line (holding the handler's lock, waiting for the output's); then a signal handler on the
# main thread logs. With a lock each, each thread waited for the other for good.
_CROSSED_LOCKS = """
import io, logging, signal, sys, threading, time
from sidequest.worker.logs import BatchingHandler, LineSafeStream

out = io.StringIO()
stdout = LineSafeStream(out)
handler = BatchingHandler(stdout, background=False)
logger = logging.getLogger("sidequest.test")
logger.handlers[:] = [handler]
logger.propagate = False
signal.signal(signal.SIGUSR1, lambda *_: logger.warning("the handler's line"))
job = threading.Thread(target=lambda: logger.warning("a job's line"))

class Printing(io.StringIO):
    def write(self, text):
        if job.ident is not None:  # the lines after the first: written
            return out.write(text)
        job.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the job's thread waits for the lock
            frame = sys._current_frames().get(job.ident)
            if frame is not None and frame.f_code.co_name in ("_put", "flush"):
                break
        signal.raise_signal(signal.SIGUSR1)
        return out.write(text)

stdout._stream = Printing()
stdout.write("the main thread's print\\n")
job.join(10)
sys.stdout.write(out.getvalue())
"""


def test_a_signal_handler_that_logs_while_its_thread_prints_and_a_job_logs_does_not_hang(
        ) -> None:
    done = subprocess.run([sys.executable, "-c", _CROSSED_LOCKS], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["a job's line", "the handler's line",
                                                "the main thread's print"], done.stdout
