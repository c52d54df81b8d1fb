"""Sidekiq's retry policy as pure functions: how long to wait, when to give up, what to store.

The worker calls these with the job's hooks already evaluated, so everything here can be
tested without Redis or threads.
"""

from __future__ import annotations

import base64
import random
import traceback
import zlib
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from sidequest.payload import Payload, dumps, loads

DEFAULT_MAX_RETRIES = 25
MAX_MESSAGE = 10_000
#: Stored when reading an exception's message itself raises.
UNREADABLE_MESSAGE = "!!! ERROR MESSAGE THREW AN ERROR !!!"


@dataclass(frozen=True)
class Decision:
    """What to do with a failed job: ``retry`` at ``at``, send it to ``dead``, or ``drop`` it."""

    action: Literal["retry", "dead", "drop"]
    job: Payload
    at: float = 0.0


def max_attempts(retry: Any, default: int = DEFAULT_MAX_RETRIES) -> int | None:
    """Retries allowed by a payload's ``retry`` value; None means no retry and no dead set.

    Ruby truthiness: only false (and a missing value read as the default) are special;
    ``0`` means "do not retry, but keep it in the dead set".
    """
    if retry is False:
        return None
    if isinstance(retry, int) and not isinstance(retry, bool):
        return max(retry, 0)
    return default


def backoff(count: int, rng: random.Random | None = None) -> float:
    """Sidekiq's delay before retry number ``count`` (0-based): count**4 + 15 + jitter."""
    jitter = (rng or random).randrange(10) * (count + 1)
    return float(count**4 + 15 + jitter)


def error_message(exc: BaseException) -> str:
    """The exception's message, cut to 10,000 characters; never raises."""
    try:
        text = str(exc)
    except Exception:
        return UNREADABLE_MESSAGE
    return text[:MAX_MESSAGE] if len(text) > MAX_MESSAGE else text


def error_class(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def backtrace_lines(tb: TracebackType | None, limit: Any = True) -> list[str]:
    """Innermost frame first, in Ruby's ``file:line:in 'method'`` shape that Sidekiq's UI shows."""
    frames = traceback.extract_tb(tb)
    lines = [f"{f.filename}:{f.lineno}:in `{f.name}'" for f in reversed(frames)]
    if isinstance(limit, int) and not isinstance(limit, bool):
        return lines[:limit]
    return lines


def encode_backtrace(lines: list[str]) -> str:
    """Strict Base64 of zlib of a JSON array, as Sidekiq >= 7.2.1 writes and every version reads."""
    return base64.b64encode(zlib.compress(dumps(lines).encode())).decode("ascii")


def decode_backtrace(value: Any) -> list[str]:
    """Read any Sidekiq backtrace: Base64 with or without newlines, or a raw JSON array."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if not isinstance(value, str) or not value:
        return []
    try:
        lines = loads(zlib.decompress(base64.b64decode(value)))
    except (ValueError, zlib.error, RecursionError):
        return []
    return [str(v) for v in lines] if isinstance(lines, list) else []


def record_failure(job: Payload, exc: BaseException, now: float) -> Payload:
    """A copy of ``job`` with Sidekiq's error fields set for this failure."""
    out = dict(job)
    if isinstance(job.get("retry_queue"), str) and job["retry_queue"]:
        out["queue"] = job["retry_queue"]
    out["error_message"] = error_message(exc)
    out["error_class"] = error_class(exc)
    if "retry_count" in job and isinstance(job["retry_count"], int):
        out["retry_count"] = job["retry_count"] + 1
        out["retried_at"] = now
    else:
        out["retry_count"] = 0
        out["failed_at"] = now
    bt = job.get("backtrace")
    if bt is not None and bt is not False and bt != 0:
        out["error_backtrace"] = encode_backtrace(backtrace_lines(exc.__traceback__, bt))
    return out


def decide(
    job: Payload,
    exc: BaseException,
    now: float,
    *,
    default_retry: Any = True,
    retry_in: Any = None,
    rng: random.Random | None = None,
) -> Decision:
    """Apply Sidekiq's rules to one failure.

    ``default_retry`` is the job class's option, used when the payload has no ``retry`` key.
    ``retry_in`` is what the class's hook returned: a positive number of seconds, "kill",
    "discard", or None for the default backoff.
    """
    retry = job.get("retry", default_retry)
    limit = max_attempts(retry)
    failed = record_failure(job, exc, now)
    if limit is None or retry_in == "discard":
        return Decision("drop", failed)
    if retry_in == "kill" or failed["retry_count"] >= limit:
        return Decision("dead" if job.get("dead", True) is not False else "drop", failed)
    count = failed["retry_count"]
    if isinstance(retry_in, (int, float)) and not isinstance(retry_in, bool) and retry_in > 0:
        delay = float(retry_in) + (rng or random).randrange(10) * (count + 1)
    else:
        delay = backoff(count, rng)
    return Decision("retry", failed, now + delay)
