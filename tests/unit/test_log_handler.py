"""The worker's log handler: lines batched by a writer thread, or written at once by the
thread that logs (the -P supervisor's, which must have no other thread when it forks)."""

from __future__ import annotations

import io
import logging
import threading
import time

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
