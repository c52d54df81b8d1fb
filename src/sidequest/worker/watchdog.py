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

The same freeze outside a stop would outlast the worker's lease: its heartbeat cannot renew
it, another worker takes it for dead and runs its jobs again while the frozen job still runs,
and the job's own timeout cannot fire either. So a thread of the worker also writes a pulse
(a zero byte, no signal's number) every second, and a watchdog that hears none for ``stall``
seconds, less than what is left of the lease by then, kills the worker first: its jobs are
recovered as after any crash, one run at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("sidequest")

#: The watchdog's program: a fresh interpreter (-I -S) costs a few MB, a fork of a loaded
#: worker would look as big as the worker itself.
_PROGRAM = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # stray INT or TERM: not for us (the pipe tells)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
import select
fd, parent, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def kill():
    try:
        os.kill(parent, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended meanwhile
    sys.exit(0)
stall = float(sys.argv[4])  # 0: no pulse is watched
# The pipe carries signal numbers (bytes 1-31, written by Python's C handler), pulses (a
# zero byte) and, before a pulse, what the worker runs now (printable text, bytes 32-126).
running, text = "", bytearray()
def take(data):
    global running
    for byte in data:
        if byte >= 32:
            text.append(byte)
        elif byte == 0 and text:
            running = text.decode("ascii", "replace")
            text.clear()
    return bool({signal.SIGTERM, signal.SIGINT} & set(data))
def jobs():
    return (f"; running at its last pulse, a second or less before: {running}"
            if running not in ("", "-") else "")
while True:
    if not select.select([fd], [], [], stall or None)[0]:
        if os.getppid() != parent:
            sys.exit(0)  # the worker is gone; a process it forked holds the pipe open
        sys.stderr.write(f"sidequest: worker process {parent} has run no Python code for"
                         f" {stall:g} s (a job holding the interpreter in C code: a regular"
                         " expression, a huge sort); killing it before its lease runs out, so"
                         " that the worker that recovers its jobs does not run them beside it."
                         f" Raise lease_ttl for jobs that hold the interpreter this long{jobs()}"
                         "\\n")
        sys.stderr.flush()
        kill()
    data = os.read(fd, 4096)
    if not data:
        sys.exit(0)  # the worker exited
    if take(data):
        break
deadline = time.monotonic() + grace
os.set_blocking(fd, False)
while time.monotonic() < deadline:
    time.sleep(0.05)
    try:
        data = os.read(fd, 4096)
        if data == b"" or os.getppid() != parent:
            sys.exit(0)
        take(data)
    except BlockingIOError:
        pass
sys.stderr.write(f"sidequest: worker process {parent} did not stop within {grace:g} s of its"
                 " stop signal (a job holding the interpreter, or a stop that hung); killing"
                 " it: its unfinished jobs stay in progress, and another worker recovers"
                 f" them{jobs()}\\n")
sys.stderr.flush()
kill()
"""


#: Seconds between two pulses.
PULSE = 1.0
#: The shortest stall worth watching for: with a shorter lease (tests shrink every timer) a
#: busy host's scheduling hiccup would pass for a frozen worker.
MIN_STALL = 5.0


def stall_limit(lease_ttl: float, heartbeat_interval: float) -> float:
    """Seconds without a pulse after which the worker is frozen: the last lease renewal
    may be a heartbeat interval older than the last pulse, and a reaper takes the lease's
    end at once, so the kill leaves it 2 s. 0 (not watched) when that is under MIN_STALL."""
    stall = lease_ttl - heartbeat_interval - 2 * PULSE
    return stall if stall >= MIN_STALL else 0.0


def _above_stdio(*fds: int) -> tuple[int, ...]:
    """The pipe's ends moved above 2: started with a standard stream closed (``<&-``), the
    process gets that number for the pipe, and the spawn's /dev/null for the child's stdin
    replaced the read end (the watchdog read EOF, took it for the worker's exit, and ended
    at once)."""
    moved = []
    for fd in fds:
        above = fd if fd > 2 else fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
        if above != fd:
            os.close(fd)
        moved.append(above)
    return tuple(moved)


def start(grace: float, stall: float = 0.0) -> None:
    """Start the watchdog for this process; call from the main thread, before any signal.
    ``stall`` > 0: kill the process once it has sent no pulse for that long."""
    read_fd, write_fd = _above_stdio(*os.pipe())
    os.set_blocking(write_fd, False)
    try:
        # Spawned, not a Popen: a Popen object warns (a ResourceWarning under `python -X
        # dev`, a traceback under `-W error`) when it goes while its process runs, and this
        # one outlives the worker by design. A session of its own: a Ctrl-C at the terminal
        # goes to the worker's process group, and one that came while this interpreter was
        # starting (before it ignores SIGINT) printed a KeyboardInterrupt traceback. It needs
        # no signal: the worker's exit closes the pipe, and that ends it.
        os.set_inheritable(read_fd, True)
        os.posix_spawn(
            sys.executable, [sys.executable, "-I", "-S", "-c", _PROGRAM, str(read_fd),
                             str(os.getpid()), str(grace), str(stall)], os.environ,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                          *_closed_in_child(keep=read_fd)], setsid=True)
    except (OSError, NotImplementedError, AttributeError) as exc:  # (no posix_spawn setsid)
        log.warning("no watchdog for this worker (%s): a job holding the GIL could delay"
                    " its shutdown", exc)
        os.close(write_fd)
        return
    finally:
        os.close(read_fd)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    _WRITE_FD[0] = write_fd
    if stall:
        threading.Thread(target=_pulse, args=(write_fd,), name="sidequest-pulse",
                         daemon=True).start()


def _closed_in_child(keep: int) -> list[tuple[int, int]]:
    """Close in the watchdog every inheritable descriptor but standard output and error and
    ``keep`` (those the worker inherited: a socket its service manager passed, say), as
    subprocess's close_fds does: the watchdog outlives the worker by a moment, holding them."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # no /proc: nothing to look through
        return []
    fds = sorted({int(name) for name in names if name.isdigit()} - {0, 1, 2, keep})
    return [(os.POSIX_SPAWN_CLOSE, fd) for fd in fds if _inheritable(fd)]


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # closed meanwhile (listdir's own descriptor)
        return False


#: Set by the worker: the jobs it runs now (``Report jid=ab12..., ...``), for the watchdog to
#: name when it kills the process (its own log lines of them may not have been written).
running: Callable[[], str] | None = None
#: Longest description sent: one write of at most PIPE_BUF bytes is never split by a signal's.
MAX_TEXT = 1000


def _pulse(fd: int) -> None:
    """Tell the watchdog that this process still runs Python code, once a PULSE, with what
    it runs whenever that changed."""
    told = ""
    while True:
        now = _described()
        try:
            os.write(fd, b"\0" if now == told else now.encode("ascii") + b"\0")
            told = now
        except BlockingIOError:
            pass  # a full pipe: the watchdog is behind, and has heard from us anyway
        except OSError:
            return  # the watchdog is gone: no one to tell
        time.sleep(PULSE)


def _described() -> str:
    """What ``running`` says, as printable ASCII (bytes 32 to 126: none reads as a signal's
    number or a pulse); "-" for nothing."""
    try:
        text = running() if running is not None else ""
    except Exception:  # a diagnostic: never let it stop the pulse
        text = ""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text[:MAX_TEXT])
    return clean or "-"


_WRITE_FD = [-1]


def notify_stop() -> None:
    """A stop that came through Redis, not a signal: start the watchdog's clock too."""
    if _WRITE_FD[0] >= 0:
        with contextlib.suppress(OSError):
            os.write(_WRITE_FD[0], bytes([signal.SIGTERM]))
