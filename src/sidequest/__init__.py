"""Sidequest: background jobs for Python, wire-compatible with Sidekiq.

Importing this package loads only the client side; the worker lives in ``sidequest.worker``
and is loaded by the ``sidequest`` command or ``sidequest.worker.embed``.
"""

from __future__ import annotations

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
from sidequest.hooks import on_death, on_error
from sidequest.job import Job, JobFunction, job
from sidequest.limiter import OverLimit
from sidequest.periodic_jobs import periodic

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
    "periodic",
]
