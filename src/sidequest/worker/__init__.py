"""The worker process: fetch, run, retry, schedule, heartbeat, reap.

Loaded only by the ``sidequest`` command or by :func:`embed`, never by ``import sidequest``.
"""

from __future__ import annotations

from sidequest.worker.launcher import Launcher, embed

__all__ = ["Launcher", "embed"]
