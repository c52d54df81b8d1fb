"""Sidequest: background jobs for Python, wire-compatible with Sidekiq.

Importing this package loads only the client side; the worker lives in ``sidequest.worker``
and is loaded by the ``sidequest`` command or ``sidequest.worker.embed``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sidequest import limiter, middleware
from sidequest.batch import Batch
from sidequest.connection import configure
from sidequest.enqueue import enqueue
from sidequest.errors import (
    ConfigError,
    JobTimeout,
    PayloadError,
    RedisUnavailable,
    SidequestError,
    UnknownJobError,
)
from sidequest.hooks import on_death, on_error, on_quiet, on_shutdown, on_startup
from sidequest.job import Job, JobFunction, job
from sidequest.limiter import OverLimit
from sidequest.periodic_jobs import periodic

if TYPE_CHECKING:  # for type checkers, plain attributes; at run time, loaded on first use
    from sidequest import api as api
    from sidequest import testing as testing

__version__ = "0.1.0"

__all__ = [
    "Batch",
    # errors
    "ConfigError",
    # jobs and enqueueing; rate limiters (limiter, OverLimit)
    "Job",
    "JobFunction",
    "JobTimeout",
    "OverLimit",
    "PayloadError",
    "RedisUnavailable",
    "SidequestError",
    "UnknownJobError",
    "__version__",
    # setup
    "configure",
    "enqueue",
    "job",
    "limiter",
    "middleware",
    "on_death",
    "on_error",
    "on_quiet",
    "on_shutdown",
    "on_startup",
    "periodic",
]


#: Subpackages reachable as attributes after a bare ``import sidequest`` (the migration guides
#: write ``sidequest.api.cancel(jid)``), loaded only when first used: the API's modules and
#: the testing doubles cost an import that a process that only pushes need not pay.
_LAZY = ("api", "testing")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"sidequest.{name}")
    raise AttributeError(f"module 'sidequest' has no attribute {name!r}")
