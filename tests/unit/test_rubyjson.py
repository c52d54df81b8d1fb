"""sidequest.rubyjson and the payload writers: floats spelled byte for byte as Ruby's
JSON.generate spells them (Sidekiq's API finds sorted-set entries by that text).

Every expected string here was printed by Ruby 3.1 (json 2.6.1): ``ruby -rjson -e 'puts
JSON.generate([1e15])'``. tests/interop/test_float_spelling_interop.py checks thousands of
random doubles against a running Ruby.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections import OrderedDict
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pytest

from sidequest import rubyjson
from sidequest.payload import _dumps_ascii, dumps, dumps_bytes, loads
from sidequest.rubyjson import float_text, needs_ruby_floats

#: (value, what Ruby writes): Ruby and Python's repr differ on the first group only.
SPELLINGS = [
    (1e15, "1.0e+15"),
    (-1e15, "-1.0e+15"),
    (1e16, "1.0e+16"),
    (1e22, "1.0e+22"),
    (1e100, "1.0e+100"),
    (1.5e15, "1.5e+15"),
    (1234567890123456.0, "1.234567890123456e+15"),
    (9999999999999998.0, "9.999999999999998e+15"),
    (1e-5, "1.0e-05"),
    (5e-324, "5.0e-324"),
    (-5e-324, "-5.0e-324"),
    # Written alike by both.
    (1234567890123456.5, "1234567890123456.5"),
    (999999999999999.9, "999999999999999.9"),
    (123456789012345.0, "123456789012345.0"),
    (2.5e-05, "2.5e-05"),
    (9.999999999999999e-05, "9.999999999999999e-05"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (2.2250738585072014e-308, "2.2250738585072014e-308"),
    (0.0001, "0.0001"),
    (0.00012345, "0.00012345"),
    (0.1, "0.1"),
    (100.0, "100.0"),
    (0.0, "0.0"),
    (-0.0, "-0.0"),
    (1700000000.123456, "1700000000.123456"),
]


@pytest.mark.parametrize(("value", "ruby"), SPELLINGS)
def test_floats_are_spelled_as_ruby_spells_them(value: float, ruby: str) -> None:
    assert float_text(value) == ruby
    assert dumps([value]) == f"[{ruby}]"
    assert dumps_bytes({"args": [value]}) == f'{{"args":[{ruby}]}}'.encode()
    assert loads(ruby) == value and math.copysign(1, loads(ruby)) == math.copysign(1, value)


def ruby_float_to_s(value: float) -> str:
    """Ruby's flo_to_s (numeric.c) rewritten from its rules, to check float_text on values
    not in the table: digits d1..dn with the point p places after d1."""
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0.0"
    # repr's digits are the shortest that round-trip, as Ruby's dtoa mode 0 gives.
    shortest = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, shortest.digits))
    n = len(digits)
    point = n + int(shortest.exponent)
    if 0 < point < n:
        return sign + digits[:point] + "." + digits[point:]
    if 0 < point <= 15:
        return sign + digits + "0" * (point - n) + ".0"
    if -4 < point <= 0:
        return sign + "0." + "0" * -point + digits
    return f"{sign}{digits[0]}.{digits[1:] or '0'}e{point - 1:+03d}"


def random_doubles(count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    values: list[float] = []
    while len(values) < count:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(value):
            values.append(value)
    values += [rng.uniform(1e-7, 1e-3) for _ in range(count // 4)]
    values += [rng.uniform(1e13, 1e18) for _ in range(count // 4)]
    values += [float(rng.randrange(10**14, 10**17)) for _ in range(count // 4)]
    return values


def test_float_text_follows_rubys_rules_on_random_doubles() -> None:
    assert [ruby_float_to_s(v) for v, _ in SPELLINGS] == [ruby for _, ruby in SPELLINGS]
    for value in random_doubles(20_000, seed=7):
        assert float_text(value) == ruby_float_to_s(value), repr(value)
        assert float(float_text(value)) == value


def test_a_payload_is_written_as_ruby_writes_it_at_any_depth() -> None:
    job = {"class": "Report",
           "args": [1e16, {"k": [1e-5, {"deep": -1e15}], "n": None}, "é", [True, False, 2**70]],
           "kwargs": {"limit": 1e300}, "queue": "default", "created_at": 1700000000.5,
           "retry": True}
    ruby = ('{"class":"Report","args":[1.0e+16,{"k":[1.0e-05,{"deep":-1.0e+15}],"n":null},'
            '"é",[true,false,1180591620717411303424]],"kwargs":{"limit":1.0e+300},'
            '"queue":"default","created_at":1700000000.5,"retry":true}')
    assert dumps(job) == ruby
    assert dumps_bytes(job) == ruby.encode("utf-8")
    assert loads(ruby) == job
    # Strings the same as without such a float: only '"', '\\' and controls escaped.
    text = 'q " b \\ nl \n tab \t c \u0001 \u2028 🎉'
    assert dumps([text, 1e16]) == dumps([text])[:-1] + ",1.0e+16]"


def test_the_encoder_spells_float_keys_as_ruby_spells_them() -> None:
    # What JSON.generate({1e16=>1, 0.5=>2, 1e-5=>3, 7=>4, true=>5}) writes; json turns
    # None into "null" (Ruby: ""), kept as json has it. Payload keys are strings, so the
    # check does not look for float keys; the encoder, once used, spells them all.
    strings = json.encoder.encode_basestring
    assert rubyjson.encode({1e16: 1, 0.5: 2, 1e-5: 3, 7: 4, True: 5}, strings) == (
        '{"1.0e+16":1,"0.5":2,"1.0e-05":3,"7":4,"true":5}')
    assert rubyjson.encode({"a": {1e16: [1e-5]}, None: False}, strings) == (
        '{"a":{"1.0e+16":[1.0e-05]},"null":false}')


def test_tuples_and_subclasses_are_written_as_json_writes_them() -> None:
    class Level(IntEnum):
        HIGH = 3

    class Money(float):
        def __repr__(self) -> str:
            return "Money()"

    value = OrderedDict(a=(1e16, Money(1e-5), Level.HIGH, Money(0.5)), b=[Money(2.5)])
    assert dumps(value) == '{"a":[1.0e+16,1.0e-05,3,0.5],"b":[2.5]}'
    assert dumps([Money(1e16)]) == "[1.0e+16]"  # found in a subclass, and spelled as one
    assert dumps([[Money(1e16)]]) == "[[1.0e+16]]"
    assert dumps(1e16) == "1.0e+16" and dumps("x") == '"x"' and dumps(None) == "null"


def test_the_rest_is_written_as_the_standard_encoder_writes_it() -> None:
    reference = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    values = [{"": [], "e": {}, "s": "é\u2028\"\\\x00", "i": -(10**30), "b": [True, False],
               "n": None, "f": [0.1, -2.5, 1e-4]}, [[[]], {}], "top", 0, 3.5]
    for value in values:
        assert rubyjson.encode(value, json.encoder.encode_basestring) == reference.encode(value)
        assert rubyjson.encode([value, 1e16], json.encoder.encode_basestring) == (
            reference.encode([value, 1e16]).replace("1e+16", "1.0e+16"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinities_are_refused_with_or_without_other_floats(bad: float) -> None:
    for value in ([bad], {"args": [1e16, {"x": bad}]}, {"k": [0.5, bad]}):
        with pytest.raises(ValueError, match="not JSON compliant"):
            dumps(value)
        with pytest.raises(ValueError, match="not JSON compliant"):
            dumps_bytes(value)
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps({bad: 1})


@pytest.mark.parametrize(("value", "kind"), [
    ({"a": [1e16, {1}]}, "set"), ([1e-5, object()], "object"), ({"a": {1}}, "set"),
    ([1e16, b"x"], "bytes"),
])
def test_types_json_has_none_for_are_refused_as_before(value: Any, kind: str) -> None:
    with pytest.raises(TypeError, match=f"^Object of type {kind} is not JSON serializable$"):
        dumps(value)
    with pytest.raises(TypeError, match=f"^Object of type {kind} is not JSON serializable$"):
        dumps_bytes(value)


def test_keys_json_has_none_for_are_refused_as_before() -> None:
    with pytest.raises(TypeError, match="keys must be str, int, float, bool or None, not tuple"):
        dumps({(1,): 1e16})


def test_a_lone_surrogate_with_such_a_float_is_written_ascii_escaped() -> None:
    job = {"error_message": "no such file: b\udcff", "x": "é", "args": [1e16, 5e-324, 0.5]}
    expected = ('{"error_message":"no such file: b\\udcff","x":"\\u00e9",'
                '"args":[1.0e+16,5.0e-324,0.5]}')
    assert dumps(job) == expected
    assert dumps_bytes(job) == expected.encode("ascii")
    assert _dumps_ascii({"a": "é", "b": [1e-5]}) == '{"a":"\\u00e9","b":[1.0e-05]}'
    assert loads(expected) == job


def test_the_check_finds_what_python_may_spell_otherwise_and_nothing_else() -> None:
    plain: list[Any] = [
        {"class": "A", "args": [1, "x", 0.5, 0.0, -0.0, 1e-4, 999999999999999.9, None, True],
         "created_at": 1700000000.25, "nested": {"k": [[{"v": 12.5}]], "t": (1, 2.0)}},
        [], {}, "text", 3, 0.5, None,
    ]
    for value in plain:
        assert not needs_ruby_floats(value), value
    odd: list[Any] = [
        1e15, -1e16, 9.9e-5, float("nan"), float("inf"), [1e16], {"a": {"b": [[5e-324]]}},
        {"t": (1, (2, 1e20))}, OrderedDict(a=[1e16]),
    ]
    for value in odd:
        assert needs_ruby_floats(value), value
