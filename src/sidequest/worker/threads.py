"""Named daemon threads that survive their own bugs: an unexpected exception is logged and
the loop restarts after a pause, so one bad value cannot silently stop the heartbeat,
the scheduler, the reaper or the fetcher."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("sidequest")


def spawn(target: Callable[[], None], name: str, stopping: threading.Event) -> threading.Thread:
    def guarded() -> None:
        while not stopping.is_set():
            try:
                target()
                return
            except Exception:
                log.exception("%s crashed; restarting it in 1 s", name)
                stopping.wait(1.0)

    thread = threading.Thread(target=guarded, name=name, daemon=True)
    thread.start()
    return thread
