"""Shared test helpers: polling with a deadline (never a bare sleep) and an embedded worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

#: Timers shrunk so that crash and retry scenarios take well under a second each.
FAST = {
    "heartbeat_interval": 0.2,
    "lease_ttl": 1.0,
    "reaper_interval": 0.2,
    "poll_interval": 0.1,
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
def running_worker(**overrides: Any) -> Iterator[Any]:
    """An in-process worker with fast timers, stopped (gracefully) at the end."""
    from sidequest.config import build
    from sidequest.worker import embed

    launcher = embed(build(**{**FAST, **overrides}))
    try:
        yield launcher
    finally:
        launcher.stop()
