"""Shared test helpers: polling with a deadline (never a bare sleep), an embedded worker, and
running a bench script."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

#: Timers shrunk so that crash and retry scenarios take well under a second each.
FAST = {
    "heartbeat_interval": 0.2,
    "lease_ttl": 1.0,
    "reaper_interval": 0.2,
    "poll_interval": 0.1,
    "initial_poll_wait": 0,
    "fetch_timeout": 0.5,
    "idle_wait": 0.05,
    "timeout": 2.0,
}


def wait_for(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@contextmanager
def running_worker(embedded: bool = True, **overrides: Any) -> Iterator[Any]:
    """An in-process worker with fast timers, stopped (gracefully) at the end. With
    ``embedded=False`` it acts as a ``sidequest`` process would (remote stops obeyed)."""
    from sidequest.config import build
    from sidequest.worker import embed
    from sidequest.worker.launcher import Launcher

    config = build(**{**FAST, **overrides})
    if embedded:
        launcher = embed(config)
    else:
        launcher = Launcher(config)
        launcher.start()
    try:
        yield launcher
    finally:
        launcher.stop()


def need_redis() -> None:
    """Skip a test that starts its own redis-server where there is none; fail on CI."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing")
        pytest.skip("redis-server is missing (`make redis`)")


def run_script(script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a bench script to the end; at ``timeout`` send it SIGTERM, not the SIGKILL of
    subprocess.run, so that it stops its workers and its redis-server, then fail."""
    proc = subprocess.Popen([sys.executable, str(script), *args], cwd=script.parents[1],
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"{script.name} did not finish in {timeout:.0f} s\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)



def readme_block(marker: str) -> str:
    """The fenced code block right after ``<!-- marker -->`` in README.md."""
    import re

    readme = Path(__file__).resolve().parents[1] / "README.md"
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```\w*\n(.*?)^```", readme.read_text(),
                      re.DOTALL | re.MULTILINE)
    assert found, f"README.md has no fenced block after <!-- {marker} -->"
    return found.group(1)


def kill_leftovers(started: list[subprocess.Popen[str]]) -> None:
    """Kill (and reap) the processes in ``started`` still running: a failing test must not
    leave its worker behind."""
    while started:
        proc = started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class Output:
    """Collects a process's output lines in a thread so tests can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        #: The process's exit code, for a caller that waited for it to set.
        self.code: int | None = None
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 15) -> str:
        return wait_for(lambda: next((ln for ln in self.lines if text in ln), None),
                        timeout, f"output line containing {text!r}; got {self.lines[-5:]}")
