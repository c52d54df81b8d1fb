"""Signals during start-up. Ctrl-C: a KeyboardInterrupt, and a record that a stop was asked
for; TSTP: recorded, to quiet the worker once it runs; TTIN: a thread dump on standard error.

The command line installs this INT handler first thing, also where INT was inherited as
ignored: a shell without job control (a script's ``sidequest ... &``, many CI runners) starts
background commands that way, and Python then installs no handler, so an INT during start-up
(loading the app, reaching Redis) was dropped. The handler raises KeyboardInterrupt, as
Python's own does, which ends a start-up that is importing the app. But CPython prints and
drops an exception raised inside a weakref callback or a ``__del__``, and the import system
runs such callbacks as a module finishes loading: a Ctrl-C at that instant would be lost and
the worker would start and run on. So the handler also records the signal, and the worker
(or the ``-P`` supervisor), once its own handlers are in place, stops at once if one came.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
from types import FrameType

_pending: list[int] = []
#: TSTP (quiet) received before the worker's own handlers were in place.
_quiet: list[int] = []


def install() -> None:
    """Answer INT from now on; a no-op outside the main thread (signals go to it only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)


def hold_quiet() -> None:
    """Record TSTP from now on, for the worker to quiet itself once it runs (``take_quiet``).
    Until then TSTP's default action stops the whole process: a deploy that quiets every
    worker froze one still loading the app, deaf to the TERM that followed. For the worker
    only: other commands keep the shell's Ctrl-Z."""
    if hasattr(signal, "SIGTSTP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTSTP, _record_quiet)


def hold_dump() -> None:
    """Answer TTIN from now on with every thread's stack on standard error, until the worker's
    own handler (the same dump, to its log) is in. Its default action stops the process, as
    TSTP's does; and a start-up that hangs (an import that waits on a database) is exactly
    when someone asks where it is."""
    if not hasattr(signal, "SIGTTIN") or threading.current_thread() is not threading.main_thread():
        return
    try:
        # At the C level: it answers also while the main thread is held in C code (a
        # database driver connecting at import), where a Python handler would wait. Taken
        # off first: a -P child inherits its supervisor's registration, which register()
        # would then only update, leaving the child's handler as it was (TTIN's default).
        faulthandler.unregister(signal.SIGTTIN)
        faulthandler.register(signal.SIGTTIN, file=sys.stderr, all_threads=True)
    except (AttributeError, ValueError, OSError, RuntimeError):  # stderr has no descriptor
        signal.signal(signal.SIGTTIN, _dump_early)


def _dump_early(signum: int, frame: FrameType | None) -> None:
    with contextlib.suppress(Exception):  # a closed or broken standard error: nothing to do
        sys.stderr.write(f"sidequest: pid={os.getpid()} is still starting; where each thread"
                         f" is (most recent call first):\n")
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


def _record_quiet(signum: int, frame: FrameType | None) -> None:
    _quiet.append(signum)


def take_quiet() -> bool:
    """True, once, if a TSTP came before the caller's own handlers: it should quiet."""
    came = bool(_quiet)
    _quiet.clear()
    return came


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _pending.append(signum)
    raise KeyboardInterrupt


def take() -> bool:
    """True, once, if an INT came before the caller's own handlers: it should stop."""
    came = bool(_pending)
    _pending.clear()
    return came
