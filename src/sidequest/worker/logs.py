"""Log setup for the worker: one line per job start/done/fail, plain text or JSON.

Per-job lines are built only when their level is enabled, since at thousands of jobs a
second formatting is a real cost; ``-v`` and ``--log-level`` choose.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import sys
import threading
import time
import traceback
from typing import IO, Any, cast

from sidequest import retry
from sidequest.shown import printable

LOGGER = "sidequest"
_JOB_FIELDS = ("tid", "class", "jid", "elapsed")


_PID = os.getpid()
#: The shard this process serves, when there are several: on each line, so that an outage's
#: lines say which Redis (with -P, every child writes to the same output). "" with one Redis.
shard = ""
#: Frames of a failed job's traceback in its WARNING line.
TRACEBACK_FRAMES = 5
#: Sidequest's own source folder: its frames are left out of a failure's line.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
#: Set by setup(): the handler that per-job lines go to directly.
_handler: BatchingHandler | None = None


class JobLine(logging.LogRecord):
    """A per-job INFO line built without LogRecord's set-up (caller lookup, thread and
    process names), which costs more than the line is worth at thousands of jobs a second.
    It carries exactly what our formatters read."""

    def __init__(self, msg: str, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)
        self.name, self.msg, self.args = LOGGER, msg, ()
        self.levelno, self.levelname = logging.INFO, "INFO"
        self.created = time.time()
        self.msecs = (self.created % 1) * 1000
        self.process = _PID
        self.exc_info, self.exc_text, self.stack_info = None, None, None


def counted(n: int, noun: str) -> str:
    """``1 job``, ``2 jobs``: for log lines read by people."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _ours(logger: logging.Logger) -> bool:
    return _handler is not None and logger.handlers == [_handler]


def _shown(msg: str, fields: dict[str, Any]) -> str:
    """``msg`` led by the job's fields, for an app's own formatter (an embedded worker under
    ``logging.basicConfig``), which knows nothing of them: "start" alone says which job?"""
    shown = [f"{name}={fields[name]}" for name in _JOB_FIELDS[1:] if fields.get(name) is not None]
    return " ".join([*shown, msg])


def job_info(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """Log a per-job line at INFO: straight to our batching handler when it is installed,
    through the logging machinery otherwise (an app that embeds the worker)."""
    handler = _handler
    if handler is not None and logger.handlers == [handler]:
        if logger.isEnabledFor(logging.INFO):
            handler.handle(JobLine(msg, fields))
    else:
        logger.info(_shown(msg, fields), extra=fields)


class TextFormatter(logging.Formatter):
    """``2026-11-27T11:40:00.123Z pid=1 tid=ab class=Foo jid=f00 elapsed=0.01 INFO: done``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"{stamp}.{int(record.msecs):03d}Z pid={record.process}"]
        if shard:
            parts.append(f"shard={printable(shard)}")
        for name in _JOB_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:  # the class is the payload's: written out if odd
                parts.append(f"{name}={printable(str(value))}")
        line = f"{' '.join(parts)} {record.levelname}: {_message(record)}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _message(record: logging.LogRecord) -> str:
    """The record's message, its string arguments (a payload's class or jid, a queue name)
    written out if they hold control characters: the format's own newlines stay."""
    args = record.args
    if not args or not isinstance(args, tuple):
        return record.getMessage()
    try:
        return str(record.msg) % tuple(printable(a) if isinstance(a, str) else a for a in args)
    except (TypeError, ValueError):
        return record.getMessage()


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": record.created,
            "pid": record.process,
            **({"shard": shard} if shard else {}),
            "lvl": record.levelname,
            "msg": record.getMessage(),
        }
        for name in _JOB_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class BatchingHandler(logging.Handler):
    """Writes log lines in batches from a background thread.

    Ten processor threads each writing and flushing two lines per job contend for the
    handler lock and the GIL, and halve throughput. Here ``handle`` only appends to a deque
    (atomic under the GIL); a writer thread formats and writes everything queued every
    ``interval`` seconds in one call. Warnings and errors are written at once, in order, so
    what precedes a crash is on screen: a SIGKILL loses at most ``interval`` of info lines.
    """

    def __init__(self, stream: IO[str], interval: float = 0.05, background: bool = True) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._queue: collections.deque[logging.LogRecord] = collections.deque()
        # Reentrant, and a flush inside a flush returns at once: a signal handler (TTIN's
        # thread dump, a second Ctrl-C's warning) logs on the main thread, between two steps
        # of whatever it was doing, writing a line included. Waiting there for the lock its
        # own thread holds would hang the process; the interrupted flush writes the line.
        # The standard output's own lock when it writes there: with two locks, a thread
        # flushing (holding this one, waiting for the stream's) and a main thread printing
        # (holding the stream's) whose signal handler logs would wait for each other.
        self._write_lock: threading.RLock = getattr(stream, "lock", None) or threading.RLock()
        self._writing = False
        self._wake = threading.Event()
        self._closed = False
        self.pid = os.getpid()
        # Without a background thread every line is written at once, by the thread that
        # logs it: for a process that forks (the -P supervisor), since a thread caught
        # mid-write by fork() would leave the child's standard output locked forever.
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="sidequest-log", daemon=True)
            self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        self._queue.append(record)
        if self._thread is None or record.levelno >= logging.WARNING:
            self.flush()
        return True

    def close(self) -> None:
        """Write what is queued and end the writer thread."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        self.flush()
        super().close()

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() is used
        self.handle(record)

    def flush(self) -> None:
        with self._write_lock:
            if self._writing:  # a signal handler's line, in the thread that is writing
                return
            self._writing = True
            try:
                while self._queue:  # again after a write: what a handler queued meanwhile
                    self._write(self._take_queued())
            finally:
                self._writing = False

    def _take_queued(self) -> list[str]:
        lines = []
        while self._queue:
            record = self._queue.popleft()
            try:
                lines.append(self.format(record))
            except Exception:
                self.handleError(record)
        return lines

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        text = "\n".join(lines) + "\n"
        try:
            try:
                self.stream.write(text)
            except UnicodeEncodeError:  # a lone surrogate, or what the encoding lacks
                encoding = getattr(self.stream, "encoding", None) or "utf-8"
                self.stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            self.stream.flush()
        except Exception as exc:
            # The reader of the output is gone (a broken pipe: a log shipper that died, a
            # `| head`) or the stream was closed. These lines are lost, but raised to the
            # thread that logged, the error ended a processor thread at its job's failure
            # line, and the worker went on heartbeating with nothing running its jobs.
            _output.failed(exc, self.stream)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            try:
                self.flush()
            except Exception:  # a closed stream at exit must not print a traceback
                return


class _OutputState:
    """Whether writing the process's output failed: said once on standard error. A broken
    pipe stays broken (its reader is gone for good), so once is enough."""

    def __init__(self) -> None:
        self._failing = False

    def failed(self, exc: Exception, stream: Any) -> None:
        if self._failing or getattr(stream, "closed", False):  # closed: the process exits
            return
        self._failing = True
        stderr = sys.__stderr__
        if stderr is None:  # no standard error at all (pythonw)
            return
        with contextlib.suppress(Exception):  # it may be the same broken pipe
            stderr.write(
                f"sidequest: pid={os.getpid()} cannot write its output ({type(exc).__name__}:"
                f" {exc}): whatever read it has stopped. Jobs go on running; from now on their"
                f" log lines and printed output are lost (restart the worker to reconnect its"
                f" output)\n")
            stderr.flush()


_output = _OutputState()


class LineSafeStream:
    """Standard output shared by job threads: each thread's text is written a whole line at a
    time, so two jobs' ``print`` calls (text, then newline, as two writes) never merge on one
    line, and log lines land between jobs' lines, never inside them."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        # Reentrant: a signal handler's log line may come while its thread prints. Shared
        # with the log handler that writes here (BatchingHandler).
        self.lock = threading.RLock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        pending = getattr(self._pending, "text", "") + text
        head, newline, tail = pending.rpartition("\n")
        self._pending.text = tail
        if newline:
            self._put(head + newline)
        return len(text)

    def flush(self) -> None:
        pending = getattr(self._pending, "text", "")
        self._pending.text = ""
        self._put(pending, flush=True)

    def _put(self, text: str, flush: bool = False) -> None:
        try:
            with self.lock:
                if text:
                    self._stream.write(text)
                if flush:
                    self._stream.flush()
        except UnicodeError:
            raise  # (a stream other than the standard one) the log handler escapes its line
        except (OSError, ValueError) as exc:
            # Nobody reads the output any more (a broken pipe) or it was closed: a job that
            # prints must not fail for it, and be run again with its work done twice.
            _output.failed(exc, self._stream)

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty... of the real stream
        return getattr(self._stream, name)


def flush() -> None:
    """Write every queued log line now (the banner must precede the first job's output)."""
    if _handler is not None:
        _handler.flush()


def log_failure(logger: logging.Logger, exc: BaseException, fields: dict[str, Any]) -> None:
    """A failed job, once, at WARNING: ``fail:``, its error, and the last frames of its
    traceback, one line each; the whole traceback when DEBUG (``-v``) is on."""
    summary = f"fail: {retry.error_class(exc)}: {retry.error_message(exc)[:2000]}"
    if not _ours(logger):
        summary = _shown(summary, fields)
    if logger.isEnabledFor(logging.DEBUG):
        logger.warning(summary, extra=fields, exc_info=(type(exc), exc, exc.__traceback__))
        return
    every = traceback.extract_tb(exc.__traceback__)
    # The job's own frames, not Sidequest's around them (for a short job, four of the five).
    theirs = [f for f in every if not f.filename.startswith(_PACKAGE)]
    frames = (theirs or every)[-TRACEBACK_FRAMES:]
    lines = [f"    {f.filename}:{f.lineno} in {f.name}" for f in frames]
    if lines:
        whose = " outside Sidequest" if theirs and len(theirs) < len(every) else ""
        lines.append(f"    (last {len(frames)} frames{whose}; -v logs the whole traceback)")
    logger.warning("\n".join([summary, *lines]), extra=fields)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def setup(level: str, fmt: str, background: bool = True) -> logging.Logger:
    """Sidequest's log lines to standard output; ``background``: written in batches by a
    thread of their own (see BatchingHandler), else (and on a terminal) at once by the
    thread that logs."""
    global _handler, _PID
    _PID = os.getpid()  # after a fork (-P), the child's own pid, not the supervisor's
    real = sys.stdout._stream if isinstance(sys.stdout, LineSafeStream) else sys.stdout
    # On a terminal someone is reading along: each line is written as it is logged, so a
    # job's own output shows between its start and done lines. Batching pays off for the
    # throughput of a worker whose output goes to a file or a log collector.
    background = background and not _is_terminal(real)
    # A new wrapper each time: after a fork, the parent's lock may be held by a dead thread.
    stream = cast(IO[str], LineSafeStream(real))
    sys.stdout = stream
    logger = logging.getLogger(LOGGER)
    if _handler is not None and _handler.pid == _PID:
        _handler.close()  # or its thread would outlive it (a child's copy is left alone:
        # its queue holds the parent's lines, and its lock may have been held at the fork)
    handler = _handler = BatchingHandler(stream, background=background)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger


def thread_id(ident: int | None = None) -> str:
    """A short id for the current thread (or the one of ``ident``), unique within the process
    (Sidekiq's tid shape)."""
    value = ((threading.get_ident() if ident is None else ident) ^ os.getpid()) & 0xFFFFFFFFFFFF
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
    return out or "0"


def dump_threads() -> None:
    """TTIN: every thread's stack to the log, as Sidekiq does."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or 0)
        stack = "".join(traceback.format_stack(frame)) if frame else "(no frame)\n"
        # The stack in the message itself, not an argument: arguments are written out with
        # their newlines escaped (a payload's odd name), which put each stack on one line.
        text = f"thread {printable(thread.name)}:\n{stack.rstrip()}"
        logging.getLogger(LOGGER).warning(text)
