"""``sidequest.enqueue``: push a job by its name, from a process that cannot import the job
class (another service, a script, a different codebase), in the spirit of Sidekiq's
``Client.push``. The same checks as ``perform_async`` run before anything is written."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sidequest import client
from sidequest.errors import ConfigError
from sidequest.options import PUSH_OPTIONS, TIMING, push_hint, to_epoch, validate_options


def enqueue(job_name: str, *args: Any, queue: str = "default",
            delay: float | timedelta | None = None, at: float | datetime | None = None,
            **options: Any) -> str | None:
    """Push the job named ``job_name`` (its wire name: ``"app.jobs.SendWelcome"``, or the
    class's ``name``) with positional ``args``; returns its jid (None: a unique job whose
    identical twin is queued, scheduled or running, or a client middleware cancelled it).

    ``queue`` is where it goes (the job class's own options are not known here: its
    ``queue``, ``unique_for``, or a ``unique_key`` hook; a ``unique_for=`` given here makes the
    identity the name, queue and arguments, which a push from the class with a hook does not
    share), ``delay``
    (seconds or a timedelta) or ``at`` (a datetime or epoch seconds) schedule it, and
    ``retry``, ``backtrace``, ``dead``, ``retry_queue``, ``tags`` and ``jid`` are the options
    of ``Job.set(...)``.
    """
    if not isinstance(job_name, str) or not job_name.strip():
        raise ValueError(f"enqueue() needs the job's name as a string, e.g. "
                         f"'app.jobs.SendWelcome'; got {job_name!r}")
    if delay is not None and at is not None:
        raise ValueError("enqueue() takes delay= or at=, not both")
    # The queue too: a name no worker may serve (`sidequest -q` refuses it) would strand it.
    unknown = [key for key in options if key not in PUSH_OPTIONS]
    timing = [key for key in unknown if key in TIMING]
    if timing:  # not the hint, which names the class's methods that enqueue() stands in for
        raise ConfigError(f"enqueue(): unknown option {timing[0]!r}; schedule with delay="
                          f" (seconds or a timedelta) or at= (a datetime or epoch seconds)")
    arguments = [key for key in unknown if push_hint(key) is None]
    if arguments:
        # The job's own keyword arguments, most likely (beside a misspelt option or not):
        # said, since the option list alone reads as if each were a misspelt option.
        raise ConfigError(f"enqueue(): unknown option {arguments[0]!r}; enqueue() passes the"
                          f" job's arguments by position only (its keywords are push options:"
                          f" {', '.join(PUSH_OPTIONS)}): give them in order, after the name,"
                          f" or as one dict")
    options = validate_options({"queue": queue, **options}, "enqueue()", PUSH_OPTIONS)
    item: dict[str, Any] = {"class": job_name, **options, "args": list(args)}
    if "tags" in item:
        item["tags"] = list(item["tags"])
    if delay is not None:
        when = client.schedule_time(to_epoch(delay, relative=True))
    elif at is not None:
        when = client.schedule_time(to_epoch(at, relative=False))
    else:
        when = None
    if when is not None:
        item["at"] = when
    return client.push(item)
