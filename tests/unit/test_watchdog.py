"""The watchdog process (worker/watchdog.py): out of the worker's process group, so a Ctrl-C
at the terminal never reaches it, and gone as soon as the worker is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from sidequest.worker import watchdog

# Ctrl-C's default action, set explicitly: a test run from a background shell inherits
# SIGINT ignored. Short naps, as the real worker takes: a signal that lands after the
# interpreter's last check but before a sleep's system call does not cut that sleep short,
# so one long sleep would keep a worker that got the INT alive for its whole length.
WORKER = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
from sidequest.worker import watchdog
watchdog.start(30.0)
print("ready", flush=True)
import time
for _ in range(600):
    time.sleep(0.1)
"""


def test_the_watchdog_is_outside_the_workers_group_and_ends_with_it() -> None:
    worker = subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        (dog,) = psutil.Process(worker.pid).children()
        assert os.getpgid(dog.pid) != os.getpgid(worker.pid)
        # What a Ctrl-C does: INT to the worker's whole group. The worker (no handler here)
        # ends; the watchdog did not get it and ends because the worker's pipe closed.
        os.killpg(worker.pid, signal.SIGINT)
        assert worker.wait(10) != 0
        dog.wait(10)
        assert worker.stderr is not None
        assert worker.stderr.read().count("KeyboardInterrupt") == 1  # the worker's own
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


FROZEN = """
import ctypes, sys
from sidequest.worker import watchdog
watchdog.start(30.0, stall=float(sys.argv[1]))
print("ready", flush=True)
ctypes.PyDLL(None).sleep(30)  # in C, holding the interpreter: no thread runs
"""


def test_a_worker_frozen_in_c_past_the_stall_limit_is_killed_and_said_so() -> None:
    worker = subprocess.Popen([sys.executable, "-c", FROZEN, "2"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        assert worker.wait(15) == -signal.SIGKILL  # not the 30 s its C call would take
        assert worker.stderr is not None
        assert (f"worker process {worker.pid} has run no Python code for 2 s"
                in worker.stderr.read())
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_worker_started_with_its_input_closed_has_a_watchdog_too() -> None:
    """Started with ``<&-``, the pipe took descriptor 0, which the watchdog's own stdin
    (/dev/null) replaced: it read EOF, took it for the worker's exit and ended at once."""
    worker = subprocess.Popen([sys.executable, "-c", FROZEN, "2"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=lambda: os.close(0))  # noqa: PLW1509 - no threads
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        assert worker.wait(15) == -signal.SIGKILL  # not the 30 s its C call would take
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_live_worker_is_not_killed_for_a_stall() -> None:
    """The pulse thread runs beside a main thread that sleeps (releasing the interpreter)."""
    worker = subprocess.Popen([sys.executable, "-c", FROZEN.replace(
        "ctypes.PyDLL(None).sleep(30)", "import time; time.sleep(4)"), "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert worker.wait(15) == 0, worker.stderr.read() if worker.stderr else ""


def test_the_stall_limit_leaves_the_lease_room_and_is_off_for_short_leases() -> None:
    from sidequest.worker.watchdog import stall_limit

    assert stall_limit(20.0, 5.0) == 13.0  # the defaults
    assert stall_limit(1.0, 0.2) == 0.0  # tests' fast timers: a hiccup is no freeze


FORKS_AND_EXITS = """
import os, sys, time
from sidequest.worker import watchdog
watchdog.start(30.0, stall=1.0)
if os.fork() == 0:  # a job's child (multiprocessing's fork): it holds the pipe open
    time.sleep(4)
    os._exit(0)
print("ready", flush=True)
"""


def test_a_worker_gone_while_its_child_holds_the_pipe_is_not_killed_for_a_stall() -> None:
    worker = subprocess.Popen([sys.executable, "-c", FORKS_AND_EXITS], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, err = worker.communicate(timeout=20)  # until the child and the watchdog are gone too
    assert worker.returncode == 0
    assert "has run no Python code" not in err, err


def test_the_watchdog_inherits_no_descriptor_but_its_pipe() -> None:
    """Spawned without subprocess's close_fds, it held every inheritable descriptor of the
    worker (a socket its service manager passed) until it exited."""
    passed, other = os.pipe()
    private = os.open(os.devnull, os.O_RDONLY)  # Python's default: not inheritable
    try:
        os.set_inheritable(passed, True)
        os.set_inheritable(other, True)
        closed = {fd for _, fd in watchdog._closed_in_child(keep=other)}
        assert passed in closed and other not in closed and private not in closed
        assert not closed & {0, 1, 2}
    finally:
        for fd in (passed, other, private):
            os.close(fd)
