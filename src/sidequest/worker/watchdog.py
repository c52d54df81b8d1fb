"""A watchdog process that ends a worker that cannot stop itself.

A job stuck in C code that holds the GIL freezes every thread of its process, the one that
handles SIGTERM included, so the process could never honour its shutdown timeout. Python's C
signal handler still runs, though, and writes each signal's number to the fd given to
``signal.set_wakeup_fd``, without the GIL. A small separate process reads that pipe: after a
TERM or INT it waits the shutdown timeout plus 1.5 seconds and SIGKILLs the worker if it is
still there.
The worker's jobs then stay in its in-progress list, and the reapers of other processes
recover them once its lease expires. When the worker exits, the pipe closes and the watchdog
exits too.

The watchdog is a POSIX shell script, not a second Python interpreter: while the worker runs
it is a shell waiting on ``dd`` for one byte, about 4 MB of RSS against 10 MB for
``python -I -S``, on every worker process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess

log = logging.getLogger("sidequest")

#: Arguments: the worker's pid, the grace in seconds; stdin: the read end of the wakeup pipe.
#: A byte that is neither TERM nor INT (TSTP, TTIN, a job's own signal) is skipped; ``echo .``
#: keeps a newline byte (SIGUSR1) from reading as the end of the pipe. Background lists get
#: /dev/null as stdin, hence fd 3. A stray INT or TERM (a service manager signalling the whole
#: group) is ignored, by this shell and by the commands it starts: the pipe tells it to stop.
_PROGRAM = """
trap '' INT TERM
parent=$1 grace=$2
term=$(printf '\\017') int=$(printf '\\002')
while :; do
    byte=$(dd bs=1 count=1 2>/dev/null; echo .)
    case ${byte%.} in
        '') exit 0 ;;
        "$term"|"$int") break ;;
    esac
done
exec 3<&0
sleep "$grace" & timer=$!
(cat <&3 >/dev/null; kill -9 "$timer" 2>/dev/null) & reader=$!
if wait "$timer" 2>/dev/null; then
    kill -9 "$reader" 2>/dev/null
    kill -9 "$parent" 2>/dev/null
fi
"""
#: What ``ps`` shows as the script's name ($0).
NAME = "sidequest-watchdog"


def spawn(read_fd: int, parent: int, grace: float) -> subprocess.Popen[bytes]:
    """The watchdog of ``parent``, reading the signal numbers from ``read_fd``."""
    return subprocess.Popen(
        ["/bin/sh", "-c", _PROGRAM, NAME, str(parent), f"{grace:.3f}"],
        # A session of its own: a Ctrl-C at the terminal goes to the worker's process group,
        # and one that came while the shell was starting (before its trap) would end it.
        # It needs no signal: the worker's exit closes the pipe, and that ends it.
        stdin=read_fd, start_new_session=True,
    )


def start(grace: float) -> None:
    """Start the watchdog for this process; call from the main thread, before any signal."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        spawn(read_fd, os.getpid(), grace)
    except OSError as exc:
        log.warning("no watchdog for this worker (%s): a job holding the GIL could delay"
                    " its shutdown", exc)
        os.close(write_fd)
        return
    finally:
        os.close(read_fd)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    _WRITE_FD[0] = write_fd


_WRITE_FD = [-1]


def notify_stop() -> None:
    """A stop that came through Redis, not a signal: start the watchdog's clock too."""
    if _WRITE_FD[0] >= 0:
        with contextlib.suppress(OSError):
            os.write(_WRITE_FD[0], bytes([signal.SIGTERM]))
