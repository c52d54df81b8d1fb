"""A plain (sync-only) server middleware: with it, async jobs run on worker threads, each
thread waiting for the event loop to run its job."""

from __future__ import annotations

from typing import Any

from sidequest import middleware


def plain(job: Any, payload: dict[str, Any], queue: str, call_next: Any) -> Any:
    return call_next()


middleware.server.add(plain)
