"""``sidequest -P N``: one supervisor process forking N worker processes, for the GIL.

Duties:
1. load the application once, before forking, so children share its memory pages;
2. fork N children, each a full worker (its own identity, threads and Redis connections);
3. restart a child that dies unexpectedly, backing off if it keeps dying at once (quiet, if
   the group or that child was quieted); a child that stops on a configuration error stops
   them all (exit 2), since a restart would too; one stopped from the dashboard or the API
   is not restarted, even if its stop ends by the hard deadline, and the supervisor exits
   once none is left (a child tells of a quiet or stop read from Redis on a pipe);
4. forward TERM/INT (graceful stop), TSTP (quiet) and TTIN (thread dump) to every child, and
   after a stop wait for them up to the shutdown timeout plus a margin, then kill stragglers.

The supervisor itself never talks to Redis: a connection opened before a fork would be shared
by parent and child, and their replies would interleave.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sidequest import interrupts
from sidequest.config import Config
from sidequest.worker import identity
from sidequest.worker.lifecycle import stop_budget

log = logging.getLogger("sidequest")
#: A child that dies sooner than this after its start counts as a crash loop.
FAST_DEATH = 5.0
_FORWARDED = ("SIGTERM", "SIGINT", "SIGTSTP", "SIGTTIN")
#: Most dead children a replacement is given to recover at start (see _replace).
HANDED_ON = 8
#: A child's exit code for a configuration error: a restart would fail the same way.
CONFIG_ERROR = 2
#: A child's exit code after a stop asked through Redis (the dashboard's Stop): not restarted.
STOPPED_ON_REQUEST = 3


#: What a child tells its supervisor through its report pipe: a quiet or a stop asked through
#: Redis (the dashboard, the API), which the supervisor cannot see otherwise. Its replacement,
#: should it die, starts quiet; a stopped one is not replaced even if its stop ends in a
#: forced exit (a job stuck past the shutdown timeout) rather than STOPPED_ON_REQUEST.
QUIETED, STOPPED = b"Q", b"S"
#: A child over --max-memory, or with a job stuck past its timeout, stops to be replaced: at
#: once, not after the wait a crash at start gets (it, too, may exit 0).
RETIRED = b"R"


@dataclass(frozen=True)
class Child:
    """What a forked child is given: its slot, the nonce of its identity, the identities of
    dead children whose jobs it recovers at start, and the pipe it reports on."""

    slot: int
    nonce: str
    gone: tuple[str, ...]
    #: The group, or the child this one replaces, was quieted: it starts quiet.
    quiet: bool = False
    #: The write end of its report pipe (-1: none).
    report_fd: int = -1
    #: What it has reported: each once, so that the pipe never fills (a child quieted a
    #: thousand times) and a later stop is never behind a full one.
    _told: set[bytes] = field(default_factory=set, compare=False, repr=False)

    def heard(self, name: str) -> None:
        """The child read signal ``name`` from Redis (or is retiring: ``RETIRED``): tell the
        supervisor what it means for a replacement; never fails the child."""
        what = {"TSTP": QUIETED, "TERM": STOPPED, "INT": STOPPED, "RETIRED": RETIRED}.get(name)
        if what is not None and what not in self._told and self.report_fd >= 0:
            self._told.add(what)
            with contextlib.suppress(OSError):  # the supervisor is gone: nothing to tell
                os.write(self.report_fd, what)


@dataclass
class _Running:
    started: float
    slot: int
    nonce: str
    reports: int  # the read end of its report pipe
    quiet: bool  # started quiet: so is its replacement
    #: The dead children whose jobs it was to recover at start: handed on to its own
    #: replacement should it die first (an on_startup hook that fails runs before that).
    gone: tuple[str, ...] = ()

    def told(self) -> bytes:
        """What the child reported before it exited (the pipe is closed here)."""
        try:
            return os.read(self.reports, 64)
        except OSError:  # nothing written (non-blocking read)
            return b""
        finally:
            os.close(self.reports)


#: prctl option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1

class Supervisor:
    def __init__(self, config: Config, processes: int,
                 child_main: Callable[[Child], int]) -> None:
        self.config = config
        self.processes = processes
        #: Runs a child, given its slot (0 to processes - 1): a restarted child takes the
        #: slot of the one it replaces (its metrics port, for one).
        self.child_main = child_main
        self.children: dict[int, _Running] = {}
        self.stopping = False
        self.quieted = False
        self._delay = 0.5
        self._misconfigured = False
        #: Replacements to start, each at its time (monotonic): (when, slot, gone, quiet).
        #: Kept here rather than slept for, so that a TERM meanwhile starts none, and other
        #: children are still reaped while one slot backs off.
        self._due: list[tuple[float, int, tuple[str, ...], bool]] = []

    def run(self) -> int:
        self._install_signals()
        if interrupts.take():  # a Ctrl-C while the app loaded that Python had to drop
            log.info("stopped while starting")
            return 0
        if interrupts.take_quiet():  # a TSTP while the app loaded: the children start quiet
            self.quieted = True
        for slot in range(self.processes):
            self._fork(slot)
        log.info("supervisor %d started %d worker processes: %s", os.getpid(),
                 self.processes, " ".join(map(str, self.children)))
        while not self.stopping:
            self._reap_and_restart()
            self._start_due()
            time.sleep(0.2)  # the supervision period
        return self._shutdown()

    def _fork(self, slot: int, gone: tuple[str, ...] = (), quiet: bool = False) -> None:
        """Start the child of ``slot``; ``gone``: the identity of the child it replaces, if
        that one died, for it to recover that one's jobs at once; ``quiet``: that one was
        quieted."""
        parent = os.getpid()
        nonce = identity.new_nonce()  # chosen here, so that its identity is known here
        reports, report_fd = os.pipe()
        os.set_blocking(reports, False)
        quiet = self.quieted or quiet
        pid = os.fork()
        if pid == 0:  # the child: run a worker, never return into the supervisor's loop
            for name in _FORWARDED:
                signal.signal(getattr(signal, name), signal.SIG_DFL)
            interrupts.hold_quiet()  # not TSTP's nor TTIN's default (stop) until its
            interrupts.hold_dump()  # worker runs
            for fd in (reports, *(c.reports for c in self.children.values())):
                os.close(fd)
            _stop_with(parent)
            code = 1
            try:
                code = self.child_main(Child(slot, nonce, gone, quiet, report_fd))
            finally:
                sys.stdout.flush()
                os._exit(code)
        os.close(report_fd)
        self.children[pid] = _Running(time.monotonic(), slot, nonce, reports, quiet, gone)
        # A TERM or TSTP whose handler ran between the fork and the line above was not
        # passed on to this child: pass it now.
        if self.stopping:
            os.kill(pid, signal.SIGTERM)
        elif self.quieted and not quiet and hasattr(signal, "SIGTSTP"):
            os.kill(pid, signal.SIGTSTP)

    def _reap_and_restart(self) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            if pid not in self.children:
                # Not a worker: an orphan the supervisor adopted as PID 1 in a container (a
                # dead worker's watchdog, a process the application started): only reaped.
                continue
            child = self.children.pop(pid)
            told = child.told()
            if self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            if code == CONFIG_ERROR:
                self._give_up(pid)
                return
            if code == STOPPED_ON_REQUEST or STOPPED in told:
                log.info("worker process %d was stopped from the dashboard or the API; not"
                         " starting another (%s left)", pid, len(self.children))
                if not self.children and not self._due:  # the last one: the supervisor is
                    self.stopping = True  # done (never reset the flag: a TERM may have set it)
                continue
            self._replace(pid, child, code, told)

    def _replace(self, pid: int, child: _Running, code: int, told: bytes) -> None:
        """Plan the start of a dead child's replacement: at once after a retirement (it said
        so: --max-memory, or a job stuck past its timeout, the process's plan), after a
        growing wait when children die soon after they start (the app fails at start)."""
        wait = 0.0
        # Quieted by a TSTP the supervisor passed on, too: the child reports only a quiet
        # asked through Redis.
        quiet = self.quieted or child.quiet or QUIETED in told
        retired = code == 0 and RETIRED in told
        handed_on: tuple[str, ...] = ()
        if retired:
            log.info("worker process %d retired; starting another", pid)
        elif time.monotonic() - child.started < FAST_DEATH:
            wait, self._delay = self._delay, min(self._delay * 2, 30.0)
            handed_on = child.gone  # it may have died before it recovered them
        else:
            self._delay = 0.5
        if not retired:
            log.warning("worker process %d exited (%s); starting another%s%s", pid,
                        _describe(code), f" in {wait:g} s" if wait else "",
                        ", quiet as it was" if quiet else "")
        # Dead for certain (reaped here): its replacement recovers its jobs at start,
        # instead of a reaper after its lease expires (the fallback, if that one fails).
        # The last few: in a crash loop the list would grow at each death, and the older
        # ones' jobs a reaper recovers once their leases run out.
        gone = (((identity.of(pid, child.nonce),) if child.nonce else ()) + handed_on)[:HANDED_ON]
        self._due.append((time.monotonic() + wait, child.slot, gone, quiet))

    def _start_due(self) -> None:
        now = time.monotonic()
        for entry in [e for e in self._due if e[0] <= now]:
            self._due.remove(entry)
            if not self.stopping:
                _, slot, gone, quiet = entry
                self._fork(slot, gone, quiet=quiet)

    def _give_up(self, pid: int) -> None:
        """A child stopped on a configuration error (logged by it): stop the others."""
        log.error("worker process %d stopped on a configuration error (above); stopping the"
                  " other worker processes: fix it and start again", pid)
        self._misconfigured = self.stopping = True
        self._signal_children(signal.SIGTERM)

    def _signal_children(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):  # it just exited
                os.kill(pid, signum)

    def _install_signals(self) -> None:
        def forward(signum: int, _frame: object) -> None:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stopping = True
            if signum == getattr(signal, "SIGTSTP", None):
                self.quieted = True  # a child started from now on starts quiet too
            self._signal_children(signal.SIGTERM if signum == signal.SIGINT else signum)

        for name in _FORWARDED:
            signal.signal(getattr(signal, name), forward)

    def _shutdown(self) -> int:
        # The children's own hard deadline (the jobs' timeout, the application's quiet and
        # shutdown hooks' share, a margin), and a little more: killed earlier, a child would
        # die in its hooks and leave its process record behind.
        deadline = time.monotonic() + self.config.timeout + stop_budget() + 5
        worst = 0
        while self.children and time.monotonic() < deadline:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.05)
                continue
            gone = self.children.pop(pid, None)
            if gone is not None:
                gone.told()  # closes its pipe
            code = os.waitstatus_to_exitcode(status)
            if code < 0:  # a signal's default action ended it: no graceful stop, say so
                log.error("worker process %d ended while stopping (%s)", pid,
                          _describe(code))
            if code == STOPPED_ON_REQUEST:  # stopped as asked: a graceful stop
                code = 0
            worst = max(worst, 1 if code < 0 else code)
        for pid in self.children:
            log.error("worker process %d did not stop in time; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            worst = 1
        return CONFIG_ERROR if self._misconfigured else worst


def _stop_with(parent: int) -> None:
    """In a child: be sent SIGTERM (a graceful stop) when the supervisor dies, even by
    SIGKILL, so that no worker runs on unsupervised (Linux's PR_SET_PDEATHSIG; elsewhere a
    no-op, as there the service manager stops the process group)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _describe(code: int) -> str:
    """An exit code as ``os.waitstatus_to_exitcode`` gives it, in words."""
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
