"""Sidequest's exceptions. This module imports nothing so every layer can use it."""

from __future__ import annotations

import threading


class SidequestError(Exception):
    """Base class of every error Sidequest raises on purpose."""


class ConfigError(SidequestError, ValueError):
    """A setting, job option or command-line flag is wrong; the message says which and why."""


class RedisUnavailable(SidequestError, ConnectionError):
    """Redis could not be reached, so nothing was written.

    Raised to the caller of ``perform_async`` and friends during an outage: the job was not
    enqueued and the caller decides whether to retry, fail the request or buffer it. One
    case differs, and its message says so: the connection failed after the job was sent,
    so it may have been enqueued.

    A ``perform_bulk`` that fails after some of its chunks were written says which jobs:
    ``enqueued`` (written before the failure), ``unsent`` (after it: not written), and the
    failed chunk's, in neither list, as its message says.
    """

    enqueued: tuple[str, ...] = ()
    unsent: tuple[str, ...] = ()


class UnknownJobError(SidequestError, LookupError):
    """A payload names a job class that this process does not know."""


class PayloadError(SidequestError, ValueError):
    """A payload read from Redis is not a job: not JSON, or not the shape Sidekiq defines."""


class JobKilled(SidequestError):
    """Recorded as the error of a job that was in flight when its process died too often."""


TIMEOUT_MESSAGE = "the job ran past its timeout"
#: The time limit of the job this thread runs (``seconds``), set by the worker around it: a
#: JobTimeout raised into the thread is made with no arguments (only its class can be), and
#: says the limit from here, so that the middleware (metrics, traces) sees the message the
#: log and the retry set show.
timeout_of_thread = threading.local()


class JobTimeout(SidequestError):
    """Raised inside a job that ran past its ``timeout``; a failure under the retry rules."""

    def __init__(self, message: str | None = None) -> None:
        if message is None:
            limit = getattr(timeout_of_thread, "seconds", None)
            message = TIMEOUT_MESSAGE if limit is None else f"{TIMEOUT_MESSAGE} of {limit:g} s"
        super().__init__(message)
