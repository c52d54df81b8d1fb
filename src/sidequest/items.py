"""What every pushed item goes through before it is written: Sidekiq client's checks (a job
it would refuse is refused here too) and the fields a job gets by default.

Kept apart from client.py, which writes the items, so that modules the client itself imports
(batches, for their callbacks) can build an item without importing the client.
"""

from __future__ import annotations

import math
from typing import Any

from sidequest import expiry, options, unique
from sidequest.payload import KWARGS, Payload, check_args, new_jid, now


def normalize(item: Payload, created_at: float | None = None, jid: str | None = None) -> Payload:
    """Validate a raw item and fill in ``jid``, ``created_at``, ``queue`` and ``retry``."""
    if not isinstance(item.get("class"), str) or not item["class"]:
        raise ValueError(f"a job needs a 'class' string naming the job, got {item.get('class')!r}")
    args = item.get("args")
    if type(args) is not list:
        raise TypeError(f"job args must be a list, got {type(args).__name__}: {args!r}")
    check_args(args)
    kwargs = item.get(KWARGS)
    if kwargs is not None:
        if type(kwargs) is not dict:
            raise TypeError(f"job kwargs must be a dict, got {type(kwargs).__name__}")
        check_args(kwargs, KWARGS)
    _check_timing_and_tags(item)
    queue = item.get("queue", "default")
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue must be a non-empty string, got {queue!r}")
    out = dict(item)
    out["queue"] = queue
    out.setdefault("retry", True)
    if "jid" not in out:
        out["jid"] = jid or new_jid()
    if "created_at" not in out:
        out["created_at"] = created_at if created_at is not None else now()
    problem = options.check_unique(out.get(unique.FOR), out.get(unique.UNTIL))
    if problem:
        raise ValueError(problem)
    unique.stamp(out)
    expiry.stamp(out)
    return out


def _check_timing_and_tags(item: Payload) -> None:
    """Sidekiq's own checks on ``at``, ``tags`` and ``retry_for``, so that a job it would refuse
    is refused here too rather than written and misread later."""
    if "at" in item and not _is_number(item["at"]):
        raise TypeError(f"job 'at' must be a number (epoch seconds), got {item['at']!r}; leave "
                        "it out to enqueue now")
    tags = item.get("tags")
    if tags is not None and tags is not False and type(tags) is not list:
        raise TypeError(f"job tags must be a list of strings, got {type(tags).__name__}: "
                        f"{tags!r}")
    window = item.get("retry_for")
    if window is not None and window is not False and (
        not _is_number(window) or window > 1_000_000_000
    ):
        raise ValueError(f"retry_for must be a number of seconds (for example 48 * 3600), "
                         f"got {window!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
