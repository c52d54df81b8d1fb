"""What this process is doing right now: counters and the busy map, shared by the
processor threads (writers) and the heartbeat (reader, flushes them to Redis)."""

from __future__ import annotations

import threading
from typing import Any


class ProcessState:
    """Counters since the last flush and the work map ``tid -> {queue, payload, run_at}``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processed = 0
        self.failed = 0
        self.work: dict[str, dict[str, Any]] = {}

    def started(self, tid: str, entry: dict[str, Any]) -> None:
        self.work[tid] = entry  # one dict store is atomic under the GIL

    def finished(self, tid: str, failed: bool) -> None:
        self.work.pop(tid, None)
        with self._lock:
            self.processed += 1
            if failed:
                self.failed += 1

    def take_counts(self) -> tuple[int, int]:
        """Return and reset (processed, failed); give them back with ``restore`` on failure."""
        with self._lock:
            counts = (self.processed, self.failed)
            self.processed = self.failed = 0
        return counts

    def restore(self, processed: int, failed: int) -> None:
        with self._lock:
            self.processed += processed
            self.failed += failed

    def busy(self) -> dict[str, dict[str, Any]]:
        return dict(self.work)
