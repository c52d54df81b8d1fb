"""Job options: which there are, what values they take, and the checks that catch a
misspelt or mistyped one when the class is defined (or ``.set(...)`` is called), not when the
job runs. Shared by ``Job``, ``@job``, ``.set``, ``sidequest.enqueue`` and the config file.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from sidequest.errors import ConfigError

log = logging.getLogger("sidequest")

#: Names Sidekiq's web UI can show a page for; others would be invisible there.
QUEUE_NAME = re.compile(r"[A-Za-z0-9_:.\-]+")
OPTIONS = ("queue", "retry", "backtrace", "dead", "retry_queue", "tags", "unique_for",
           "unique_until", "expires_in", "timeout", "store_result", "result_ttl",
           "enqueue_on_commit", "name")
#: Per-push options accepted by ``set(...)`` on top of the class options. ``wrapped`` names
#: what a generic runner job runs (a Django task, as ActiveJob's wrapper does in Sidekiq):
#: the dashboard, the metrics and the traces show that name instead of the runner's class.
PUSH_OPTIONS = (*OPTIONS[:-1], "jid", "wrapped")
#: Options given in seconds, which take a timedelta too (as ``perform_in`` does).
DURATIONS = ("unique_for", "expires_in", "timeout", "result_ttl")
_NOT_OPTIONS = {"jid", "jobs", "async_perform"}
#: When a unique job gives its lock back: as it starts, or once it has succeeded.
UNIQUE_UNTIL = ("start", "success")
#: Spellings that users of Celery, RQ or Sidekiq reach for (or slips too far from the name
#: for difflib), and what Sidequest calls them.
_ALIASES = {
    "retries": "retry",
    "retires": "retry",
    "max_retries": "retry",
    "max_retry": "retry",
    "retry_count": "retry",
    "queue_name": "queue",
    "dead_letter": "dead",
    "tag": "tags",
    "unique": "unique_for",
    "unique_for_seconds": "unique_for",
    "expiry": "expires_in",
    "expires": "expires_in",
    "ttl": "expires_in",
    "timeout_seconds": "timeout",
    "time_limit": "timeout",
    "soft_time_limit": "timeout",
    "job_timeout": "timeout",
    "save_result": "store_result",
    "keep_result": "store_result",
    "store_results": "store_result",
    "result_expires": "result_ttl",
    "queue_as": "queue",
}
#: Names that are no option at all, with what to do instead.
_INSTEAD = {
    "sidekiq_options": "set one class attribute per option (retry = 5, queue = 'low')",
    "delay": "push with perform_in(seconds, ...) instead",
    "countdown": "push with perform_in(seconds, ...) instead",
    "eta": "push with perform_at(when, ...) instead",
    "rate_limit": "limit a job's rate with a limiter (README: \"Rate limiters\")",
    "ignore_result": "no result is kept unless the job sets store_result = True: leave"
                     " ignore_result out",
    "priority": "Sidequest orders work by queue: give urgent jobs a queue of their own"
                " (queue = 'critical') and list it first (-q critical -q default)",
    "retry_backoff": "define the classmethod retry_in(count, exc, payload) to choose each"
                     " wait (the default is Sidekiq's backoff)",
    "default_retry_delay": "define the classmethod retry_in(count, exc, payload) to choose"
                           " each wait (the default is Sidekiq's backoff)",
    "retry_on": "every exception is retried (retry = N); define the classmethod"
                " retry_in(count, exc, payload) and return \"kill\" or \"discard\" for"
                " exceptions that should not be",
    "discard_on": "define the classmethod retry_in(count, exc, payload) and return"
                  " \"discard\" for those exceptions",
    # Hooks, not options: only a Job class can define them (an @job function cannot).
    "retry_in": "retry_in is a hook, not an option: write the job as a Job class (class"
                " X(sidequest.Job)) with @classmethod def retry_in(cls, count, exc, payload)"
                " returning the seconds to wait, \"kill\" or \"discard\" (an @job function"
                " cannot have one; it keeps Sidekiq's backoff)",
    "retries_exhausted": "retries_exhausted is a hook, not an option: write the job as a Job"
                         " class (class X(sidequest.Job)) with @classmethod def"
                         " retries_exhausted(cls, payload, exc) (an @job function cannot"
                         " have one; sidequest.on_death sees every job's death)",
    "unique_key": "unique_key is a hook, not an option: write the job as a Job class (class"
                  " X(sidequest.Job)) with @staticmethod def unique_key(...) taking perform's"
                  " arguments and returning what identifies the job (an @job function"
                  " cannot have one)",
}

#: Names that set() and enqueue() are given for what belongs to the push itself. Not
#: checked against a class's attributes, where they may be constants of its own.
_PUSH_INSTEAD = {
    "args": "the job's arguments are not an option: pass them to the push, as in"
            " X.set(queue='low').perform_async(1, 2) or sidequest.enqueue('app.jobs.X', 1, 2)",
    "kwargs": "keyword arguments go to the push by name, as in"
              " X.set(queue='low').perform_async(1, key=2); sidequest.enqueue() passes"
              " positional arguments only, after the job's name: enqueue('app.jobs.X', 1, 2)",
    "at": "push with perform_at(when, ...) instead",
    "run_at": "push with perform_at(when, ...) instead",
    "wait_until": "push with perform_at(when, ...) instead",
    "wait": "push with perform_in(seconds, ...) instead",
    # RQ's enqueue options (only here: a job class may hold constants of these names).
    "depends_on": "a job that runs after others is a batch callback: push them in a"
                  " sidequest.Batch(on_success=(NextJob, [args])) block (README: \"Batches\")",
    "on_success": "push the follow-up from the end of perform, or make it a batch's"
                  " on_success callback (README: \"Batches\")",
    "on_failure": "define the classmethod retries_exhausted(payload, exc) on a Job class, or"
                  " register sidequest.on_death(handler) for every job's death",
    "failure_ttl": "failed jobs wait in the retry set, then 6 months in the dead set (the"
                   " dashboard and sidequest.api manage them); there is no per-job TTL",
    "meta": "report progress with self.set_progress(fraction, message) in a class with"
            " store_result = True, read with sidequest.api.JobStatus(jid)",
    "at_front": "a queue is first in, first out: give urgent jobs a queue of their own and"
                " list it first (-q critical -q default)",
    "job_id": "the option is jid (a string of your choosing; Sidekiq makes 24 hex"
              " characters), as in X.set(jid='report-7').perform_async() or"
              " sidequest.enqueue('app.jobs.X', jid='report-7')",
    "perform_in": "push with perform_in(seconds, ...) instead",
    "perform_at": "push with perform_at(when, ...) instead",
    "scheduled_at": "push with perform_at(when, ...) instead",
    "schedule_at": "push with perform_at(when, ...) instead",
    "delay_seconds": "push with perform_in(seconds, ...) instead",
}
#: Names of "when to run" that are no option: sidequest.enqueue() takes delay= or at= for
#: them, the class's pushes perform_in and perform_at.
TIMING = frozenset({"delay", "countdown", "eta", "at", "run_at", "wait", "wait_until",
                    "perform_in", "perform_at", "scheduled_at", "schedule_at",
                    "delay_seconds"})


def push_hint(key: str) -> str | None:
    """What to tell a user who gave a push ``key`` that is no option (None: nothing close)."""
    return _hint(key, PUSH_OPTIONS, 0.6, {**_INSTEAD, **_PUSH_INSTEAD})


def _hint(key: str, known: Iterable[str], cutoff: float,
          instead: Mapping[str, str] = _INSTEAD) -> str | None:
    """What to tell a user who wrote ``key``: the option meant, or what to do instead."""
    if key in instead:
        return instead[key]
    known = tuple(known)
    alias = _ALIASES.get(key)
    if alias in known:
        return f"did you mean {alias!r}?"
    close = difflib.get_close_matches(key, known, 1, cutoff)
    return f"did you mean {close[0]!r}?" if close else None


def validate_options(options: Mapping[str, Any], where: str,
                     allowed: Iterable[str]) -> dict[str, Any]:
    """Raise ConfigError for an unknown option or a value of the wrong type; return the
    options with each duration in seconds (a timedelta is converted: payloads are JSON)."""
    allowed = tuple(allowed)
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key not in allowed:
            hint = (_hint(key, allowed, 0.6, {**_INSTEAD, **_PUSH_INSTEAD})
                    or f"known options: {allowed}")
            raise ConfigError(f"{where}: unknown option {key!r}; {hint}")
        seconds = in_seconds(value) if key in DURATIONS else value
        _check_option(key, seconds, where)
        checked[key] = seconds
    return checked


def in_seconds(value: Any) -> Any:
    """A duration option's value in seconds: a timedelta converted, anything else as is."""
    return value.total_seconds() if isinstance(value, timedelta) else value


def _check_option(key: str, value: Any, where: str) -> None:
    ok: bool
    if key in ("queue", "retry_queue"):
        ok = (value is None and key == "retry_queue") or (
            isinstance(value, str) and bool(QUEUE_NAME.fullmatch(value))
        )
        expect = "a queue name of ASCII letters, digits and _ : . -"
    elif key in ("retry", "backtrace"):
        ok = isinstance(value, bool) or (isinstance(value, int) and value >= 0)
        expect = "True, False or a non-negative int"
    elif key == "dead":
        ok, expect = isinstance(value, bool), "True or False"
    elif key == "tags":
        ok = isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value)
        expect = "a list of strings"
    elif key in ("store_result", "enqueue_on_commit"):
        ok, expect = isinstance(value, bool), "True or False"
    elif key in ("unique_for", "unique_until", "expires_in", "timeout", "result_ttl"):
        problem = (check_unique(value, None) if key == "unique_for"
                   else check_unique(None, value) if key == "unique_until"
                   else _seconds_problem(key, value))
        if problem:
            raise ConfigError(f"{where}: option {problem}")
        return
    elif key in ("jid", "wrapped"):
        ok = isinstance(value, str) and bool(value)
        expect = "a non-empty string"
    else:  # name
        ok, expect = value is None or (isinstance(value, str) and bool(value)), "a non-empty string"
    if not ok:
        raise ConfigError(f"{where}: option {key}={value!r} is invalid; expected {expect}")


def _seconds_problem(key: str, value: Any) -> str | None:
    if value is None or (not isinstance(value, bool) and isinstance(value, (int, float))
                         and math.isfinite(value) and value > 0):
        return None
    return f"{key}={value!r} is invalid; expected a number of seconds (or a timedelta) above 0"


#: Farther ahead than this, an epoch time is a slip, most often one in milliseconds.
FAR_AHEAD = 100 * 365.25 * 86400


def to_epoch(when: float | datetime | timedelta, relative: bool) -> float:
    if isinstance(when, timedelta):
        return when.total_seconds()
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.astimezone()  # naive datetimes are local time, as datetime.timestamp()
        return when.astimezone(timezone.utc).timestamp()
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
        kind = "an interval in seconds or a timedelta" if relative else "a datetime or epoch"
        raise TypeError(f"expected {kind}, got {when!r}")
    # Only an epoch can be this large (below 1e9 a number is relative seconds, as in
    # Sidekiq); in milliseconds it would otherwise schedule the job for year 58000.
    if when > time.time() + FAR_AHEAD:
        year = 1970 + int(when // (365.25 * 86400))
        raise ValueError(f"{when!r} as epoch seconds is the year {year}, over 100 years ahead:"
                         " it looks like milliseconds (time.time() * 1000, JavaScript's"
                         " Date.now()); divide it by 1000, or pass a datetime")
    return float(when)


def check_typos(cls: type, where: str) -> None:
    """Catch ``retries = 3`` and friends: a plain attribute that looks like a misspelt option."""
    for key, value in vars(cls).items():
        if key.startswith("_") or key in OPTIONS or key in _NOT_OPTIONS or callable(value):
            continue
        if isinstance(value, (classmethod, staticmethod, property)):
            continue
        # A stricter cutoff than for set(): a job class may hold constants of its own.
        hint = _hint(key, OPTIONS, 0.8)
        if hint:
            raise ConfigError(f"{where}: unknown option {key!r}; {hint}")


#: Longest unique_for, in seconds.
MAX_UNIQUE_FOR = 1_000_000_000


def check_unique(unique_for: Any, unique_until: Any) -> str | None:
    """What is wrong with these unique-job option values, or None."""
    if unique_for is not None and (
        isinstance(unique_for, bool) or not isinstance(unique_for, (int, float))
        or not math.isfinite(unique_for) or unique_for <= 0
    ):
        return (f"unique_for={unique_for!r} is invalid; expected a number of seconds (or a"
                f" timedelta) above 0")
    if unique_for is not None and unique_for > MAX_UNIQUE_FOR:
        # The lock's TTL in milliseconds must fit Redis's integers, with a schedule's wait.
        return (f"unique_for={unique_for!r} is too long; use at most {MAX_UNIQUE_FOR:,}"
                f" seconds (about 31 years)")
    if unique_until is not None and unique_until not in UNIQUE_UNTIL:
        return f"unique_until={unique_until!r} is invalid; expected 'start' or 'success'"
    return None


#: An option that does nothing without another: (the option, the one it needs, what to set).
_NEEDS = (("result_ttl", "store_result", "store_result = True"),
          ("unique_until", "unique_for", "unique_for = <seconds>"))
#: Job names already told of an option that does nothing, so each is said once.
_told: set[tuple[str, str]] = set()


def warn_of_idle_options(payload: Mapping[str, Any]) -> None:
    """Say once per job class when a push carries an option that does nothing without
    another (``result_ttl`` without ``store_result``): a setting silently ignored reads as
    a bug in the worker. At the push, not the class: a base class may set one for
    subclasses that set the other."""
    for option, needed, fix in _NEEDS:
        if payload.get(option) is not None and not payload.get(needed):
            told = (str(payload.get("class")), option)
            if told not in _told:
                _told.add(told)
                log.warning("%s: %s does nothing without %s; set %s, or drop %s", told[0],
                            option, needed, fix, option)
