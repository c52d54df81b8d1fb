"""The job the throughput bench runs: it does nothing but count itself.

The count lives in database 1 of the bench's private Redis, apart from the keys Sidequest
uses in database 0, so the bench measures completions without trusting the system under test
(its stats are flushed only every heartbeat, and an acknowledgement is not a completion).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from sidequest import Job

#: Set by bench/throughput.py for the worker it starts: ``redis://127.0.0.1:PORT/1``.
COUNTER_URL_ENV = "BENCH_COUNTER_URL"
DONE_KEY = "bench:done"

_lock = threading.Lock()
_client: redis.Redis | None = None


def counter() -> redis.Redis:
    """One client for every processor thread: each command borrows a connection from its pool."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                url = os.environ.get(COUNTER_URL_ENV)
                if not url:
                    raise RuntimeError(
                        f"{COUNTER_URL_ENV} is not set; run this job through bench/throughput.py"
                    )
                _client = redis.Redis.from_url(url)
    return _client


class Noop(Job):
    name = "bench.Noop"
    # A failure would mean a bug in the bench, not load to measure: do not retry it.
    retry = False

    def perform(self, *args: Any) -> None:
        counter().incr(DONE_KEY)
