"""A Ctrl-C during start-up stops the worker even when Python drops its KeyboardInterrupt;
a TSTP during start-up quiets the worker once it runs, and a TTIN prints where it is, rather
than stop (freeze) the process.

CPython prints and drops an exception raised inside a weakref callback (the import system
runs such callbacks as a module finishes loading), so an INT that lands there ends nothing.
The app below makes that happen on purpose while it is imported: it sends itself INT from
inside a weakref callback. The command line's INT handler records the signal as well as
raising, and the worker (or the -P supervisor) stops as soon as its own handlers are in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helpers import Output, wait_for

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os, signal, weakref

class _Thing:
    pass

def _interrupt_inside_a_callback(ref):
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(100_000):  # the INT handler runs here, and Python drops its exception
        pass

_thing = _Thing()
_ref = weakref.ref(_thing, _interrupt_inside_a_callback)
del _thing
"""


@pytest.mark.parametrize("processes", ["1", "2"])
def test_an_interrupt_python_dropped_while_the_app_loaded_still_stops_the_worker(
        redis_url: str, tmp_path: Path, processes: str) -> None:
    (tmp_path / "dropped_int_app.py").write_text(APP)
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "sidequest", "-r", "dropped_int_app", "-c", "1", "-P", processes],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    out = done.stdout + done.stderr
    assert "KeyboardInterrupt" in out and "Exception ignored" in out, out  # it was dropped
    assert done.returncode == 0, out
    assert "stopped while starting" in out, out
    assert " started: " not in out, out  # no worker ran


QUIETED_APP = """
import os, signal
from sidequest import Job

os.kill(os.getpid(), signal.SIGTSTP)  # a deploy's quiet, while the app still loads


class QuietedJob(Job):
    def perform(self):
        pass
"""


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_quiet_signal_while_the_app_loaded_quiets_the_worker_once_it_runs(
        redis_url: str, r: redis.Redis, tmp_path: Path, processes: str) -> None:
    # Before: TSTP's default action stopped the process (state T), deaf to the TERM after.
    with _app_worker(tmp_path, redis_url, "quieted_app", QUIETED_APP, processes) as out:
        out.wait_for("quiet: no new jobs will be fetched", timeout=30)
        wait_for(lambda: any(r.hget(name, "quiet") == "true" for name in r.smembers("processes")),
                 what="the process record marked quiet")


@contextlib.contextmanager
def _app_worker(tmp_path: Path, redis_url: str, module: str, source: str,
                processes: str) -> Iterator[Output]:
    """A worker of the app ``source`` (as module ``module``), its output read; it must stop
    cleanly at a TERM once the ``with`` body is done."""
    (tmp_path / f"{module}.py").write_text(source)
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidequest", "-r", module, "-c", "1", "-P", processes],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = Output(proc)
        yield out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, out.lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

DUMPED_APP = """
import os, signal
from sidequest import Job

def where_the_app_loads():
    os.kill(os.getpid(), signal.SIGTTIN)  # "where is it stuck?", while the app still loads

where_the_app_loads()


class DumpedJob(Job):
    def perform(self):
        pass
"""


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_thread_dump_asked_while_the_app_loaded_answers_and_the_worker_starts(
        redis_url: str, tmp_path: Path, processes: str) -> None:
    # Before: TTIN's default action stopped the process (state T), as TSTP's did.
    with _app_worker(tmp_path, redis_url, "dumped_app", DUMPED_APP, processes) as out:
        out.wait_for(" started: ", timeout=30)
    text = "\n".join(out.lines)
    assert "most recent call first" in text and "in where_the_app_loads" in text, text
