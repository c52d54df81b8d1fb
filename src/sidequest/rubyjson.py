"""Floats spelled as Ruby spells them, and a JSON encoder for the payloads that hold such floats.

Ruby's Sidekiq API finds a sorted-set entry by its re-serialised text: Sidekiq 6.4's
``SortedEntry#reschedule`` (ScheduledSet, RetrySet, DeadSet) parses the member, then addresses
it as ``Sidekiq.dump_json(item)``, that is ``JSON.generate``, in a ZINCRBY by ``at - score``.
If that text is not the stored member, ZINCRBY adds it as a new one, due at ``at - score`` (in
1970), and the job runs twice. What Sidequest stores must therefore be byte for byte what Ruby
writes for the same data. Strings already are (see sidequest.payload);
floats are not always: both languages write the same shortest round-trip digits, but lay them
out differently far from 1. With ``n`` digits and the decimal point ``p`` places after the
first digit (the value is 0.d1d2...dn x 10^p):

- Ruby (``Float#to_s``, which ``JSON.generate`` 2.6 calls): ``d1..dp.dp+1..dn`` when
  ``0 < p < n``; the digits, zeros and ``.0`` when ``n <= p <= 15``; ``0.`` and zeros then the
  digits when ``-4 < p <= 0``; otherwise ``d1.d2..dn`` (``d1.0`` for one digit), ``e``, and
  ``p - 1`` with its sign and at least two digits.
- Python (``repr``): the same fixed forms when ``-4 < p <= 16``, otherwise the same exponent
  form but without ``.0`` after a single digit.

So they differ for integral values in 1e15..1e16 with at most 16 digits (``1e15``: Python
``1000000000000000.0``, Ruby ``1.0e+15``; ``1234567890123456.5`` is written alike) and for a
single digit in exponent form (``1e+16`` and ``1.0e+16``, ``5e-324`` and ``5.0e-324``).

Such floats are rare in job payloads, so sidequest.payload keeps the C encoder and first asks
:func:`needs_ruby_floats`, a walk costing a fraction of the encoding; only a payload that
holds one is written by :func:`encode`, a small pure-Python encoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["encode", "float_text", "needs_ruby_floats", "not_serializable"]


def not_serializable(value: Any) -> Any:
    """The error json raises for a value it cannot write (the C encoder's ``default``)."""
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def float_text(value: float) -> str:
    """``value`` (finite) as Ruby's ``Float#to_s`` and so ``JSON.generate`` write it."""
    text = float.__repr__(value)  # float's own, as json writes a float subclass too
    mantissa, exp, exponent = text.partition("e")
    if exp:
        # Both use exponent form here (p <= -4 or p > 16); Ruby keeps ".0" after one digit.
        return text if "." in mantissa else f"{mantissa}.0e{exponent}"
    whole, _, fraction = text.partition(".")
    if len(whole.lstrip("-")) < 16 or fraction != "0":
        # p <= 15, or 17 digits with p = 16 (1234567890123456.5): the same fixed form.
        return text
    # p = 16 and the value integral (1e15 <= |value| < 1e16): fixed for Python, exponent
    # form for Ruby, whose fixed form allows at most 15 digits before the point then.
    sign, digits = ("-", whole[1:]) if whole[0] == "-" else ("", whole)
    digits = digits.rstrip("0")
    return f"{sign}{digits[0]}.{digits[1:] or '0'}e+15"


def needs_ruby_floats(obj: Any) -> bool:
    """Whether ``obj`` holds, at any depth, a float that Python might spell otherwise than
    Ruby, or NaN or an infinity (left for :func:`encode` to refuse).

    Every float value other than 0 and those with 1e-4 <= |f| < 1e15 counts: a few more than
    differ (see the module docstring), which only costs them the slower encoder. Tuples count
    as lists and subclasses as their base, as json treats them. Keys are not looked at: a
    payload's keys are strings (check_args refuses others in job arguments, and JSON read
    back has no other kind), and the walk is on the hot path.
    """
    kind = type(obj)
    return _any_odd(obj if kind is dict or kind is list or kind is tuple else (obj,))


def _any_odd(obj: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
    """The walk over one container, on the hot path of every payload written (some 40% of the
    C encoder's time on a typical job): exact-type checks only, strings (the most common
    value) first."""
    for value in obj.values() if type(obj) is dict else obj:
        kind = type(value)
        if kind is str:
            continue
        if kind is float:
            if value and not 1e-4 <= abs(value) < 1e15:  # NaN and inf fail the test too
                return True
        elif kind is dict or kind is list or kind is tuple:
            if _any_odd(value):
                return True
        elif not (kind is int or kind is bool or value is None) and _odd_other(value):
            return True
    return False


def _odd_other(value: Any) -> bool:
    """Subclasses (numpy.float64 is a float) and types json refuses (False: left to it)."""
    if isinstance(value, float):
        return _any_odd((float(value),))
    if isinstance(value, dict):
        return _any_odd(dict(value))
    if isinstance(value, (list, tuple)):
        return _any_odd(tuple(value))
    return False


def encode(obj: Any, strings: Callable[[str], str]) -> str:
    """``obj`` as compact JSON with floats as Ruby writes them, otherwise exactly what the
    json module's encoder (separators ``,`` and ``:``, ``allow_nan=False``, no sorting)
    writes with ``strings`` as its string encoder, with the same errors: ValueError for NaN
    and infinities, TypeError for types JSON has none for and for unusable keys."""
    out: list[str] = []
    _Writer(strings, out.append).value(obj)
    return "".join(out)


class _Writer:
    """One encoding; the checks follow the order of CPython's C encoder (_json.c)."""

    __slots__ = ("put", "strings")

    def __init__(self, strings: Callable[[str], str], put: Callable[[str], None]) -> None:
        self.strings = strings
        self.put = put

    def value(self, obj: Any) -> None:
        if obj is None:
            self.put("null")
        elif obj is True:
            self.put("true")
        elif obj is False:
            self.put("false")
        elif isinstance(obj, str):
            self.put(self.strings(obj))
        elif isinstance(obj, int):
            self.put(int.__repr__(obj))  # an IntEnum is written as its number
        elif isinstance(obj, float):
            self.put(_finite_text(obj))
        elif isinstance(obj, (list, tuple)):
            self.array(obj)
        elif isinstance(obj, dict):
            self.object(obj)
        else:
            not_serializable(obj)

    def array(self, obj: list[Any] | tuple[Any, ...]) -> None:
        self.put("[")
        for index, item in enumerate(obj):
            if index:
                self.put(",")
            self.value(item)
        self.put("]")

    def object(self, obj: dict[Any, Any]) -> None:
        self.put("{")
        for index, (key, item) in enumerate(obj.items()):
            if index:
                self.put(",")
            self.put(self.strings(_key_text(key)))
            self.put(":")
            self.value(item)
        self.put("}")


def _finite_text(value: float) -> str:
    if not math.isfinite(value):
        # JSON has no NaN or Infinity, nor has Ruby's parser (json's allow_nan=False).
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float_text(value)


def _key_text(key: Any) -> str:
    """A dict key as json converts it to a string (a float one spelled as Ruby would)."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _finite_text(key)
    if key is None:
        return "null"
    if key is True or key is False:
        return "true" if key else "false"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
