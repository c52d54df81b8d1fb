"""Sidekiq's retry policy as pure functions: how long to wait, when to give up, what to store.

The worker calls these with the job's hooks already evaluated, so everything here can be
tested without Redis or threads.
"""

from __future__ import annotations

import base64
import logging
import math
import random
import re
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from sidequest.payload import Payload, dumps, loads

log = logging.getLogger("sidequest")

DEFAULT_MAX_RETRIES = 25
MAX_MESSAGE = 10_000
#: Stored when reading an exception's message itself raises.
UNREADABLE_MESSAGE = "!!! ERROR MESSAGE THREW AN ERROR !!!"


#: What a job's ``retry_in`` hook may return besides a number of seconds (Sidekiq's symbols).
DISCARD = "discard"
KILL = "kill"

Action = Literal["retry", "exhausted", "discard", "off"]


@dataclass(frozen=True)
class Decision:
    """What to do with a failed job.

    ``retry``: schedule ``job`` at ``at``. ``exhausted``: retries are used up (or the job's
    ``retry_in`` said "kill"): run the job's ``retries_exhausted`` hook, then the dead set
    unless ``dead`` is false or the hook said "discard". ``discard``: ``retry_in`` said
    "discard": drop it. ``off``: retry is disabled for this job: drop it. The death handlers
    run for every action but ``retry``.
    """

    action: Action
    job: Payload
    at: float = 0.0


def max_attempts(retry: Any, default: int = DEFAULT_MAX_RETRIES) -> int | None:
    """Retries allowed by a payload's ``retry`` value; None means no retry and no dead set.

    Ruby truthiness: only false (and null, which the caller resolves to the class option
    first) are special; ``0`` means "do not retry, but keep it in the dead set".
    """
    if retry is False or retry is None:
        return None
    if isinstance(retry, int) and not isinstance(retry, bool):
        return retry
    return default


def jitter(count: int, rng: random.Random | None = None) -> int:
    """Sidekiq 8's jitter: a whole number of seconds in [0, 10 * (count + 1))."""
    return (rng or random).randrange(10 * (count + 1))


def backoff(count: int, rng: random.Random | None = None) -> float:
    """Sidekiq's delay before retry number ``count`` (0-based): count**4 + 15 + jitter."""
    return float(count**4 + 15 + jitter(count, rng))


def scrub(text: str) -> str:
    """``text`` as valid UTF-8, each invalid sequence replaced by U+FFFD, as Ruby's ``scrub``.

    A Python string can hold lone surrogates (an OS error about an undecodable file name
    does), which JSON can carry but Ruby cannot re-serialise: Ruby's scheduler would drop
    the job. Surrogate escapes stand for the original bytes, so those bytes are what is
    judged, as Ruby would judge them.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def error_message(exc: BaseException) -> str:
    """The exception's message, cut to 10,000 characters and scrubbed; never raises.

    An exception raised without arguments has Ruby's message: its class name.
    """
    try:
        text = str(exc)
    except Exception:
        return UNREADABLE_MESSAGE
    if not text and not exc.args:
        text = error_class(exc)
    return scrub(text[:MAX_MESSAGE])


def error_class(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return scrub(cls.__qualname__)
    return scrub(f"{cls.__module__}.{cls.__qualname__}")


def backtrace_lines(tb: TracebackType | None, limit: Any = True) -> list[str]:
    """Innermost frame first, in Ruby's ``file:line:in 'method'`` shape that Sidekiq's UI shows.

    ``limit`` is the payload's ``backtrace``: true keeps every line, a number keeps that many
    (Ruby's ``[0...n]``, so 0 keeps none and -1 all but the last).
    """
    frames = traceback.extract_tb(tb)
    lines = [scrub(f"{f.filename}:{f.lineno}:in `{f.name}'") for f in reversed(frames)]
    if limit is True:
        return lines
    return lines[:_ruby_to_i(limit)]


def _ruby_to_i(value: Any) -> int:
    """Ruby's ``to_i`` for the JSON values a payload may hold (unknown shapes give 0)."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        digits = re.match(r"\s*[-+]?\d+", value)
        return int(digits.group()) if digits else 0
    return 0


def encode_backtrace(lines: list[str]) -> str:
    """Strict Base64 of zlib of a JSON array, as Sidekiq >= 7.2.1 writes and every version reads."""
    return base64.b64encode(zlib.compress(dumps(lines).encode())).decode("ascii")


#: Largest backtrace inflated for display. A few kilobytes of Base64 can inflate to gigabytes
#: (a zlib bomb written into Redis); past this, a marker line is shown instead.
MAX_BACKTRACE_BYTES = 1024 * 1024
BACKTRACE_TOO_LARGE = "(backtrace too large to show: it inflates to over 1 MiB)"


def decode_backtrace(value: Any) -> list[str]:
    """Read any Sidekiq backtrace: Base64 with or without newlines, or a raw JSON array."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if not isinstance(value, str) or not value:
        return []
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(base64.b64decode(value), MAX_BACKTRACE_BYTES)
        if inflater.unconsumed_tail:
            return [BACKTRACE_TOO_LARGE]
        lines = loads(text)
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
    if bt is not None and bt is not False:  # Ruby truthiness: 0 is true and keeps no lines
        out["error_backtrace"] = encode_backtrace(backtrace_lines(exc.__traceback__, bt))
    return out


def first_failure(failed_at: Any) -> float | None:
    """``failed_at`` in seconds: Sidekiq 8 writes whole milliseconds, older versions (and
    Sidequest) float seconds; Sidekiq 8.1 tells them apart the same way, by type."""
    if isinstance(failed_at, bool) or not isinstance(failed_at, (int, float)):
        return None
    return failed_at / 1000 if isinstance(failed_at, int) else float(failed_at)


def exhausted(failed: Payload, limit: int, now: float) -> bool:
    """Sidekiq 8.1's rule: with ``retry_for`` (seconds) set, the time since the first failure
    decides and the count is ignored; otherwise the count against the limit."""
    window = failed.get("retry_for")  # Ruby truthiness: 0 is a (closed) window too
    if isinstance(window, (int, float)) and not isinstance(window, bool):
        started = first_failure(failed.get("failed_at"))
        return started is not None and started + window < now
    return bool(failed["retry_count"] >= limit)


RetryIn = Callable[[int, BaseException, Payload], Any]


def decide(
    job: Payload,
    exc: BaseException,
    now: float,
    *,
    default_retry: Any = True,
    max_retries: int = DEFAULT_MAX_RETRIES,
    retry_in: RetryIn | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """Apply Sidekiq's rules to one failure, in Sidekiq's order.

    ``default_retry`` is the job class's option, used when the payload's ``retry`` is missing
    or null; ``max_retries`` is the limit for ``retry: true``. ``retry_in`` is the class's hook,
    called only when the job may still retry: it returns seconds (a float is truncated as
    Ruby's ``to_i``; zero or less means the default backoff), "kill", "discard" or None.
    """
    retry = job.get("retry")
    if retry is None:
        retry = default_retry
    limit = max_attempts(retry, max_retries)
    if limit is None:
        return Decision("off", dict(job))
    failed = record_failure(job, exc, now)
    if exhausted(failed, limit, now):
        return Decision("exhausted", failed)
    count = failed["retry_count"]
    answer = retry_in(count, exc, failed) if retry_in is not None else None
    if answer == DISCARD:
        failed["discarded_at"] = now
        return Decision("discard", failed)
    if answer == KILL:
        return Decision("exhausted", failed)
    delay = float(count**4 + 15)
    number = isinstance(answer, (int, float)) and not isinstance(answer, bool)
    if not number and answer is not None:
        # Sidekiq falls back to the default without a word; a typo ("Kill", "later") would
        # then look like a hook that works.
        log.warning("%s.retry_in returned %r, which is not seconds, 'kill', 'discard' or None:"
                    " the default backoff applies", job.get("class"), answer)
    seconds = _ruby_to_i(answer) if number else 0
    if seconds > 0:
        delay = float(seconds)
    return Decision("retry", failed, now + delay + jitter(count, rng))
