"""Reading values other programs wrote into Redis: a number that is not one, a JSON field
that is not JSON, a key of the wrong type. The API reads them as "unknown" (0, None, {})
instead of raising, so that one odd entry cannot take down a page, ``sidequest stats`` or a
script that lists jobs."""

from __future__ import annotations

import json
import math
from typing import Any

import redis

from sidequest.url_clients import CLUSTER_UNAVAILABLE


def as_int(value: Any, default: int = 0) -> int:
    """``value`` (bytes, str or number) as an int; ``default`` when it is not one."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        number = as_float(value, None)
        return int(number) if number is not None else default


def as_float(value: Any, default: float | None = 0.0) -> float | None:
    """``value`` as a finite float; ``default`` when it is not a finite number."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, bool):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return number if math.isfinite(number) else default


def json_object(text: Any) -> dict[str, Any]:
    """A JSON object, or {} when ``text`` is not JSON or not an object."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def replies(pipe: redis.client.Pipeline) -> list[Any]:
    """A pipeline's replies with each failed command (a key of the wrong type) as None. A
    cluster that cannot serve (also a ResponseError) is raised: read as zeros, an outage
    would look like empty queues."""
    out = pipe.execute(raise_on_error=False)
    for reply in out:
        if isinstance(reply, CLUSTER_UNAVAILABLE):
            raise reply
    return [None if isinstance(r, redis.ResponseError) else r for r in out]
