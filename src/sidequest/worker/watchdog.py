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
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys

log = logging.getLogger("sidequest")

#: The watchdog's program: a fresh interpreter (-I -S) costs a few MB, a fork of a loaded
#: worker would look as big as the worker itself.
_PROGRAM = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # stray INT or TERM: not for us (the pipe tells)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
fd, parent, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
while True:
    data = os.read(fd, 64)
    if not data:
        sys.exit(0)  # the worker exited
    if {signal.SIGTERM, signal.SIGINT} & set(data):
        break
deadline = time.monotonic() + grace
os.set_blocking(fd, False)
while time.monotonic() < deadline:
    time.sleep(0.05)
    try:
        if os.read(fd, 64) == b"":
            sys.exit(0)
    except BlockingIOError:
        pass
sys.stderr.write(f"sidequest: worker process {parent} did not stop within {grace:g} s of its"
                 " stop signal (a job holding the interpreter, or a stop that hung); killing"
                 " it: its unfinished jobs stay in progress, and another worker recovers"
                 " them\\n")
sys.stderr.flush()
os.kill(parent, signal.SIGKILL)
"""


def start(grace: float) -> None:
    """Start the watchdog for this process; call from the main thread, before any signal."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _PROGRAM, str(read_fd), str(os.getpid()),
             str(grace)],
            # A session of its own: a Ctrl-C at the terminal goes to the worker's process
            # group, and one that came while this interpreter was starting (before it
            # ignores SIGINT) printed a KeyboardInterrupt traceback. It needs no signal:
            # the worker's exit closes the pipe, and that ends it.
            pass_fds=(read_fd,), stdin=subprocess.DEVNULL, start_new_session=True,
        )
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
