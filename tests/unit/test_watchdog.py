"""The watchdog process (worker/watchdog.py): out of the worker's process group, so a Ctrl-C
at the terminal never reaches it, and gone as soon as the worker is; a TERM or INT through
the pipe kills the worker once the grace has passed, any other signal does nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from sidequest.worker import watchdog

# Ctrl-C's default action, set explicitly: a test run from a background shell inherits
# SIGINT ignored.
WORKER = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
from sidequest.worker import watchdog
watchdog.start(30.0)
print("ready", flush=True)
import time
time.sleep(60)
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


class Guarded:
    """A stand-in worker (``sleep``) and its watchdog, fed signal numbers through a pipe the
    test holds, as the worker's wakeup fd would be."""

    def __init__(self, grace: float) -> None:
        self.worker = subprocess.Popen(["sleep", "60"])
        read_fd, self.write_fd = os.pipe()
        self.dog = watchdog.spawn(read_fd, self.worker.pid, grace)
        os.close(read_fd)
        self.helpers: list[psutil.Process] = []
        self.helper_names: set[str] = set()

    def send(self, *signums: int) -> float:
        os.write(self.write_fd, bytes(signums))
        return time.monotonic()

    def wait_for_child(self, name: str) -> None:
        dog = psutil.Process(self.dog.pid)
        deadline = time.monotonic() + 10
        while not any(p.name() == name for p in dog.children(recursive=True)):
            assert time.monotonic() < deadline, f"the watchdog never started {name}"
            time.sleep(0.01)

    def close_pipe(self) -> None:
        """What the worker's exit does: the watchdog's pipe ends."""
        self.helpers = psutil.Process(self.dog.pid).children(recursive=True)
        self.helper_names = {p.name() for p in self.helpers}
        os.close(self.write_fd)
        self.write_fd = -1

    def cleanup(self) -> None:
        for proc in (self.worker, self.dog):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if self.write_fd >= 0:
            os.close(self.write_fd)


@pytest.fixture
def guarded() -> Iterator[Guarded]:
    made = Guarded(grace=1.0)
    yield made
    made.cleanup()


def test_a_term_kills_the_worker_once_the_grace_has_passed(guarded: Guarded) -> None:
    sent = guarded.send(signal.SIGTERM)
    assert guarded.worker.wait(10) == -signal.SIGKILL
    assert 1.0 <= time.monotonic() - sent < 3.0
    guarded.close_pipe()  # the dead worker's end of the pipe closes with it
    assert guarded.dog.wait(10) == 0


def test_an_int_starts_the_clock_too(guarded: Guarded) -> None:
    guarded.send(signal.SIGINT)
    assert guarded.worker.wait(10) == -signal.SIGKILL


def test_other_signals_neither_start_the_clock_nor_end_the_watchdog(guarded: Guarded) -> None:
    # TSTP (quiet) and TTIN (thread dump) come through the same pipe; USR1 is byte 10, a
    # newline, which a careless read of the pipe takes for its end.
    guarded.send(signal.SIGTSTP, signal.SIGTTIN, signal.SIGUSR1)
    with pytest.raises(subprocess.TimeoutExpired):
        guarded.worker.wait(2.0)  # twice the grace: a started clock would have killed it
    assert guarded.dog.poll() is None
    guarded.send(signal.SIGTERM)
    assert guarded.worker.wait(10) == -signal.SIGKILL


def test_a_worker_that_stops_in_time_is_left_alone_and_nothing_lingers(
        guarded: Guarded) -> None:
    guarded.send(signal.SIGTERM)
    guarded.wait_for_child("cat")  # the clock runs (the timer starts before the reader)
    guarded.close_pipe()  # the worker exited within its grace
    assert guarded.dog.wait(10) == 0
    assert guarded.worker.poll() is None  # not killed
    # The timer and the pipe reader end with the watchdog, not at the end of the grace.
    _, alive = psutil.wait_procs(guarded.helpers, timeout=5)
    assert guarded.helper_names >= {"sleep", "cat"} and not alive, alive


def test_an_idle_watchdog_is_a_few_mb(guarded: Guarded) -> None:
    # Idle, it is the shell and ``dd`` waiting on the pipe; a second Python was 10 MB.
    guarded.wait_for_child("dd")
    dog = psutil.Process(guarded.dog.pid)
    rss = sum(p.memory_info().rss for p in [dog, *dog.children(recursive=True)])
    assert rss < 7 * 2**20, f"{rss / 2**20:.1f} MB"
