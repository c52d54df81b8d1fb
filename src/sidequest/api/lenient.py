"""Reading values other programs wrote into Redis: a number that is not one, a JSON field
that is not JSON, a key of the wrong type, a name that is not UTF-8. The API reads them as
"unknown" (0, None, {}, the name with its odd bytes written out) instead of raising, so that
one odd entry cannot take down a page, ``sidequest stats`` or a script that lists jobs.

A name (of a queue, of a process) is kept in two forms. ``exact`` is the text that stands for
its bytes exactly, PEP 383's way (a byte that is not UTF-8 becomes a lone surrogate, as in
``os.fsdecode``): keys built from it and passed through ``wire`` address the very member.
``shown`` is printable text (such a byte reads ``\\xff``), for pages, terminals and logs,
which cannot encode a lone surrogate."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from sidequest.url_clients import CLUSTER_UNAVAILABLE

T = TypeVar("T")


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
    """A pipeline's replies with each failed command (a key of the wrong type) as None. An
    outage is raised (``outages_raised``)."""
    out = outages_raised(pipe.execute(raise_on_error=False))
    return [None if isinstance(r, redis.ResponseError) else r for r in out]


def outages_raised(out: list[Any]) -> list[Any]:
    """``out``, the replies of ``execute(raise_on_error=False)``, once none of them is an
    outage: a cluster that cannot serve (also a ResponseError), or a connection error, which
    a cluster pipeline returns as a reply (a primary just killed). Read as data, an outage
    looked like empty queues, or raised a TypeError further on (a 500 page)."""
    for reply in out:
        if isinstance(reply, CLUSTER_UNAVAILABLE) or (
                isinstance(reply, Exception) and not isinstance(reply, redis.ResponseError)):
            raise reply
    return out


def or_empty(read: Callable[[], T], empty: T) -> T:
    """``read()``, or ``empty`` when Redis refuses it for a key of the wrong type: one
    command's ``replies``. Other refusals (a cluster that cannot serve) are raised."""
    try:
        return read()
    except redis.ResponseError as exc:
        if isinstance(exc, CLUSTER_UNAVAILABLE) or not str(exc).startswith("WRONGTYPE"):
            raise
        return empty


def exact(raw: bytes | str) -> str:
    """A name read from Redis as text that gives its bytes back exactly (see ``wire``)."""
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


def wire(text: str) -> bytes:
    """The bytes of an ``exact`` name or of a key built from one: redis-py would refuse to
    encode its lone surrogates."""
    return text.encode("utf-8", "surrogateescape")


def shown(name: bytes | str) -> str:
    """A name as printable text: bytes that are not UTF-8 written out as ``\\xff``. Equal to
    the name for every UTF-8 one."""
    if isinstance(name, str):
        try:
            return wire(name).decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate no bytes stand for: made in Python, not read
            return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return name.decode("utf-8", "backslashreplace")


def key_of(make: Callable[[str], str], raw: bytes | str) -> bytes:
    """The key ``make`` (``keys.queue``, ``keys.process``...) names for the name ``raw``,
    in bytes, so that a name that is not UTF-8 addresses its own key."""
    return wire(make(exact(raw)))
