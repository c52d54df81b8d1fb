"""The job payload: Sidekiq's JSON wire format, encoding, decoding and argument checks.

Pure functions, no Redis. Writers produce exactly what Sidekiq 6.4 writes (compact JSON with
strings and floats as Ruby's ``JSON.generate`` writes them, float-second timestamps, a 24-hex
jid); readers accept what Sidekiq 6.4 to 8.x write.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import Any

from sidequest.errors import PayloadError
from sidequest.rubyjson import encode as _ruby_encode
from sidequest.rubyjson import needs_ruby_floats
from sidequest.rubyjson import not_serializable as _not_serializable

Payload = dict[str, Any]

#: The top-level key holding a job's keyword arguments, written only when there are some.
#: Ruby Sidekiq passes ``args`` alone to ``perform`` and ignores keys it does not know, and
#: no Sidekiq feature uses this one; a job pushed from Ruby has positional arguments only.
KWARGS = "kwargs"
#: How many times a job was put back because a rate limiter was full, and which limiter it was
#: at the last try: written by the worker, shown by the dashboard's Scheduled and Dead pages.
OVERLIMIT_COUNT = "overlimit_count"
OVERLIMIT_NAME = "overlimit_name"

#: Marks a run's payload (in the worker's memory only, never written) as dropped unrun, and
#: why ("expired", "cancelled"): its end line says so, and the metrics do not time it.
DROPPED = "\x00sq_dropped"

#: Deeper nesting of args is refused at enqueue: Ruby's JSON.parse stops at 100 levels, and
#: the payload object and the args array take two of them.
MAX_DEPTH = 98
#: A value above this is milliseconds (Sidekiq 8), below it seconds (Sidekiq 6 and 7).
_MS_THRESHOLD = 1e11


# The C encoders, built once (json.JSONEncoder builds one per call, a third of the cost of a
# small payload): compact, NaN and Infinity refused. Strings are written as Ruby's
# JSON.generate writes them: UTF-8 as is, only '"', '\\' and control characters escaped (the
# same short forms and lowercase \u00XX). Ruby's API finds a sorted-set entry by its
# re-serialised text (ScheduledSet#reschedule), so any other spelling would miss ours.
# Floats the C encoder writes as Python's repr, which Ruby's Float#to_s spells otherwise far
# from 1 (1e+16 for 1.0e+16): a payload holding such a float is written by
# sidequest.rubyjson instead (see _text).
# Without circular-reference markers, which one shared dict cannot keep across threads; a
# cycle ends in RecursionError, and check_args refuses deep nesting in job arguments first.
_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)


def _make_c_encoder(strings: Any) -> Any:
    if _c_encoder is None:  # a Python without the C accelerator
        return None
    return _c_encoder(None, _not_serializable, strings, None, ":", ",", False, False, False)


_strings = json.encoder.encode_basestring
_strings_ascii = json.encoder.encode_basestring_ascii
_encode: Any = _make_c_encoder(_strings)
_encode_ascii: Any = _make_c_encoder(_strings_ascii)
_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)
_encoder_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _no_constants(name: str) -> Any:
    # Python's json reads NaN and Infinity; JSON (and Ruby's parser) does not.
    raise ValueError(f"{name} is not valid JSON")


#: Digits of the longest integer a payload may hold. Python refuses to convert strings of
#: over 4,300 digits in one go, so longer ones (Ruby writes integers of any size) are
#: assembled from chunks; but that takes time that grows with the square of the length (a
#: million digits: seconds, in a worker's scheduler as in the dashboard), so a payload past
#: this is refused as unreadable: it goes to the dead set, and no one waits on it.
MAX_INT_DIGITS = 20_000


def _parse_int(text: str) -> int:
    """Integers of up to MAX_INT_DIGITS digits, as Ruby writes them."""
    if len(text) <= 4000:
        return int(text)
    length = len(text) - text.startswith("-")
    if length > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {length:,} digits (at most {MAX_INT_DIGITS:,})")
    sign, digits = (-1, text[1:]) if text[0] == "-" else (1, text)
    value = 0
    for start in range(0, len(digits), 4000):
        chunk = digits[start : start + 4000]
        value = value * 10 ** len(chunk) + int(chunk)
    return sign * value


_decoder = json.JSONDecoder(parse_constant=_no_constants, parse_int=_parse_int)


def new_jid() -> str:
    """12 random bytes as 24 lowercase hex characters, as Sidekiq makes them."""
    return os.urandom(12).hex()


def new_jids(count: int) -> list[str]:
    """``count`` jids from one read of the system's random source."""
    text = os.urandom(12 * count).hex()
    return [text[i : i + 24] for i in range(0, 24 * count, 24)]


def now() -> float:
    return time.time()


def _text(obj: Any) -> str:
    # The walk costs some 40% of the C encoding; only the rare payload it finds a float in
    # that Python's repr may spell otherwise than Ruby is written by the slower encoder.
    if needs_ruby_floats(obj):
        return _ruby_encode(obj, _strings)
    return _encoder.encode(obj) if _encode is None else "".join(_encode(obj, 0))


def dumps(obj: Any) -> str:
    """Compact JSON with strings in raw UTF-8, byte for byte what Ruby's JSON.generate writes
    for the same data, floats included (``1.0e+16`` where Python's repr writes ``1e+16``)."""
    text = _text(obj)
    if text.isascii():  # O(1) in CPython: the common case costs nothing more
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _dumps_ascii(obj)
    return text


def dumps_bytes(obj: Any) -> bytes:
    """:func:`dumps` as the UTF-8 bytes sent to Redis, encoded once (the client's hot path:
    redis-py passes bytes through instead of encoding the text again)."""
    text = _text(obj)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _dumps_ascii(obj).encode("ascii")


def _dumps_ascii(obj: Any) -> str:
    # A lone surrogate (an error message built from an undecodable file name, say) has no
    # UTF-8 form: write the payload ASCII-escaped rather than fail to store it.
    if needs_ruby_floats(obj):
        return _ruby_encode(obj, _strings_ascii)
    return _encoder_ascii.encode(obj) if _encode_ascii is None else "".join(_encode_ascii(obj, 0))


def loads(raw: str | bytes) -> Any:
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return _decoder.decode(text)


def check_args(args: Any, what: str = "args") -> None:
    """Raise TypeError naming the first value in ``args`` that is not JSON-native.

    JSON-native means it comes back from a JSON round trip unchanged: str, int, finite float,
    bool, None, list, and dict with str keys. Tuples, datetimes, Decimals, bytes, sets, NaN and
    objects are refused before anything reaches Redis (pass ids, not objects).
    """
    if type(args) is list and _all_plain(args):
        return
    stack: list[tuple[Any, str, int]] = [(args, what, 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TypeError(f"{path} is nested deeper than {MAX_DEPTH} levels; flatten it")
        if value is None or isinstance(value, (bool, int)):
            continue
        if isinstance(value, str):
            _check_str(value, path)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise TypeError(f"{path} is {value!r}, which JSON cannot carry; use a number")
        elif type(value) is list:
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
        elif type(value) is dict:
            stack.extend(_dict_items(value, path, depth))
        else:
            raise TypeError(
                f"{path} is {_short_repr(value)} of type {type(value).__name__}, which is not"
                " JSON-native; job arguments must be str, int, float, bool, None, list or dict"
                " with str keys (pass ids, not objects)"
            )


def _all_plain(values: list[Any]) -> bool:
    """The common case, ids and names, checked in one pass with no bookkeeping."""
    for value in values:
        kind = type(value)
        if not (kind is int or (kind is str and value.isascii()) or value is None
                or kind is bool):
            return False
    return True


def _dict_items(value: dict[Any, Any], path: str, depth: int) -> list[tuple[Any, str, int]]:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(
                f"{path} has the key {key!r} of type {type(key).__name__}; JSON object keys"
                " must be str, so it would not round-trip"
            )
        _check_str(key, f"{path} key")
    return [(v, f"{path}[{k!r}]", depth + 1) for k, v in value.items()]


def _check_str(value: str, path: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError(
            f"{path} is {_short_repr(value)}, a string with a lone surrogate that is not valid"
            " UTF-8; encode or clean it first"
        ) from None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def decode(raw: str | bytes) -> Payload:
    """Parse a payload read from a queue or set; PayloadError says what is wrong with it."""
    try:
        obj = loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise PayloadError(f"payload is a JSON {type(obj).__name__}, not an object")
    cls = obj.get("class")
    if not isinstance(cls, str) or not cls:
        raise PayloadError("payload has no 'class' string")
    if not isinstance(obj.get("args"), list):
        raise PayloadError("payload 'args' is missing or not a list")
    if obj.get(KWARGS) is not None and not isinstance(obj[KWARGS], dict):
        raise PayloadError(f"payload {KWARGS!r} is not an object of keyword arguments")
    queue = obj.get("queue", "default")
    if not isinstance(queue, str) or not queue:
        raise PayloadError("payload 'queue' is not a non-empty string")
    return obj


def normalized(job: Payload, queue: str | None = None) -> Payload:
    """``job`` with what Sidekiq's ``Client.push`` fills in when missing: ``queue`` (the one
    it was fetched from, else "default"), ``jid`` and ``created_at``. Ruby's public
    ``JobSet#schedule`` and other clients write jobs without them; every reader of a payload
    that may lack them runs it through this. Returns ``job`` itself when nothing is missing.
    """
    if "queue" in job and "jid" in job and "created_at" in job:
        return job
    out = dict(job) if "queue" in job else {"queue": queue or "default", **job}
    if "jid" not in out:
        out["jid"] = new_jid()
    if "created_at" not in out:
        out["created_at"] = now()
    return out


#: Largest value read as a time (milliseconds of the year 5000, give or take): beyond it a
#: field holds garbage, which reads as "unknown" rather than breaking every page showing it.
_MAX_TIME = 1e14


def timestamp(value: Any) -> float | None:
    """A payload time in float seconds, whether written as seconds (6.x/7.x) or ms (8.x)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not -_MAX_TIME < value < _MAX_TIME:  # 1e300, 10**400, inf: odd data, not a time
        return None
    if isinstance(value, int) or value > _MS_THRESHOLD:
        # Sidekiq 8 writes integer milliseconds; an integer of seconds never occurs in 6/7.
        return value / 1000.0 if value > _MS_THRESHOLD else float(value)
    return float(value)


def display_class(job: Payload) -> str:
    """The name to show for a job: ActiveJob wrappers and display_class unwrapped."""
    for key in ("display_class", "wrapped", "class"):
        value = job.get(key)
        if isinstance(value, str) and value:
            return value
    return "?"


def job_class(payload: dict[str, Any]) -> str:
    """The name a run is counted under and logged with: the wrapped class of an ActiveJob
    (or a django.tasks task), else ``class``. A ``wrapped`` that is no class or function
    name (spaces, a newline: free text from a payload) is not taken: it would forge fields
    of a log line."""
    wrapped = payload.get("wrapped")
    if isinstance(wrapped, str) and _NAME.fullmatch(wrapped):
        return wrapped
    value = payload.get("class")
    return value if isinstance(value, str) and value else "?"


#: A Python or Ruby class or function name, dotted or with ``::``.
_NAME = re.compile(r"[A-Za-z_][\w.:]{0,199}")
