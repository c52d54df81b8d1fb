"""Standard streams made fit for a long-running command, before anything reads or writes.

A service manager or a script may start the worker with its output closed (``>&-``), or in a
locale whose encoding cannot write every character of a job's arguments, its errors or a queue
name written by another program. Left as they were, the first ``print`` in a job raised (and
the job was run again for output nobody reads), the log dropped whole batches of lines, and
``sidequest stats`` ended in a traceback.
"""

from __future__ import annotations

import io
import os
import sys


def make_usable() -> None:
    """A closed standard stream goes to /dev/null (its descriptor too, so that no file or
    socket opened later takes its number and receives what a library writes there); an open
    one writes what its encoding lacks as backslash escapes instead of raising."""
    if sys.stdin is None:  # closed (``<&-``): its number must not go to a pipe or a file
        sys.stdin = _to_devnull(0, os.O_RDONLY)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, _to_devnull(fd))
        elif isinstance(stream, io.TextIOWrapper) and stream.errors in ("strict",
                                                                        "surrogateescape"):
            # surrogateescape: the C locale's (PYTHONUTF8=0), which still raises on "é".
            stream.reconfigure(errors="backslashreplace")


def _to_devnull(fd: int, mode: int = os.O_WRONLY) -> io.TextIOWrapper:
    try:
        os.fstat(fd)
    except OSError:  # closed: give the number to /dev/null
        null = os.open(os.devnull, mode)
        if null != fd:
            os.dup2(null, fd)  # inheritable, as a standard stream is
            os.close(null)
        else:  # given the number itself, close-on-exec: a job's subprocess would lack it
            os.set_inheritable(fd, True)
    # A stream of its own, not one on ``fd``: that number may belong to a file or socket
    # the application opened since (Django's manage.py loads the app before the worker).
    return open(os.devnull, "r" if mode == os.O_RDONLY else "w", encoding="utf-8",
                errors="backslashreplace")
