"""Sidequest's exceptions. This module imports nothing so every layer can use it."""

from __future__ import annotations


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


class JobTimeout(SidequestError):
    """Raised inside a job that ran past its ``timeout``; a failure under the retry rules."""

    def __init__(self, message: str = TIMEOUT_MESSAGE) -> None:
        super().__init__(message)
