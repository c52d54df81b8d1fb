"""sidequest.payload: argument checks, decoding what Redis holds, timestamps."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from sidequest import unique
from sidequest.errors import PayloadError
from sidequest.payload import (
    MAX_DEPTH,
    check_args,
    decode,
    display_class,
    dumps,
    dumps_bytes,
    loads,
    new_jid,
    new_jids,
    normalized,
    timestamp,
)

#: Ruby's JSON.parse and JSON.generate refuse documents nested deeper than this by default,
#: and Sidekiq uses both on every payload.
RUBY_MAX_NESTING = 100


def nested(levels: int, leaf: Any = 1) -> Any:
    """``levels`` lists, one inside the other, around ``leaf``."""
    value: Any = leaf
    for _ in range(levels):
        value = [value]
    return value


def json_nesting(value: Any) -> int:
    """How deep arrays and objects nest, counted as Ruby's parser counts (top level = 1)."""
    if isinstance(value, list):
        return 1 + max((json_nesting(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((json_nesting(v) for v in value.values()), default=0)
    return 0


# --- check_args: refused values -----------------------------------------------------------


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque user 7>"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ((1, 2), "(1, 2) of type tuple"),
        ({1, 2}, "{1, 2} of type set"),
        (frozenset({3}), "of type frozenset"),
        (b"raw", "b'raw' of type bytes"),
        (bytearray(b"x"), "of type bytearray"),
        (datetime(2024, 1, 2, tzinfo=timezone.utc), "of type datetime"),
        (Decimal("1.50"), "Decimal('1.50') of type Decimal"),
        (Opaque(), "<Opaque user 7> of type Opaque"),
        (object, "of type type"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
    ],
)
def test_non_json_values_are_refused_by_name(value: Any, named: str) -> None:
    with pytest.raises(TypeError, match=re.escape(named)) as info:
        check_args([1, value])
    assert str(info.value).startswith("args[1] is ")


def test_the_error_names_the_path_to_the_value() -> None:
    with pytest.raises(TypeError) as info:
        check_args([{"user": {"ids": [1, 2, (3,)]}}])
    assert str(info.value).startswith("args[0]['user']['ids'][2] is (3,) of type tuple")


def test_the_path_starts_with_the_given_name() -> None:
    with pytest.raises(TypeError, match=r"^options\['when'\] is "):
        check_args({"when": Decimal(1)}, what="options")


def test_dict_keys_must_be_strings() -> None:
    for key in (1, 1.5, None, True, (1, 2)):
        with pytest.raises(TypeError, match=rf"args\[0\] has the key {re.escape(repr(key))} of"):
            check_args([{key: "v"}])


def test_lone_surrogates_are_refused_in_values_and_keys() -> None:
    with pytest.raises(TypeError, match=r"args\[0\] is '\\ud800x', a string with a lone surr"):
        check_args(["\ud800x"])
    with pytest.raises(TypeError, match=r"args\[0\] key is .*lone surrogate"):
        check_args([{"k\udfff": 1}])


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(TypeError) as info:
        check_args([b"x" * 10_000])
    assert len(str(info.value)) < 400
    assert "..." in str(info.value)


def test_subclasses_of_list_and_dict_are_refused() -> None:
    class Tagged(list[Any]):
        pass

    with pytest.raises(TypeError, match="of type Tagged"):
        check_args([Tagged([1])])
    from collections import OrderedDict

    with pytest.raises(TypeError, match="of type OrderedDict"):
        check_args([OrderedDict(a=1)])


def test_args_itself_must_be_json_native() -> None:
    with pytest.raises(TypeError, match=r"^args is \(1,\) of type tuple"):
        check_args((1,))


# --- check_args: nesting ------------------------------------------------------------------


def test_nesting_up_to_max_depth_passes() -> None:
    # ``args`` itself is depth 0, so the leaf of nested(n) sits at depth n.
    check_args(nested(MAX_DEPTH))
    check_args(nested(MAX_DEPTH, leaf=[]))
    check_args([{"a": nested(MAX_DEPTH - 2)}])


def test_nesting_deeper_than_max_depth_is_refused() -> None:
    with pytest.raises(TypeError, match=f"nested deeper than {MAX_DEPTH} levels"):
        check_args(nested(MAX_DEPTH + 1))
    with pytest.raises(TypeError, match="nested deeper"):
        check_args(nested(MAX_DEPTH, leaf=[None]))
    with pytest.raises(TypeError, match=r"^args\[0\]\['a'\]\[0\]\[0\].* is nested deeper"):
        check_args([{"a": nested(MAX_DEPTH - 1)}])


def test_very_deep_nesting_is_refused_without_recursion_error() -> None:
    with pytest.raises(TypeError, match="nested deeper"):
        check_args(nested(50_000))


def test_the_deepest_accepted_args_still_parse_in_ruby() -> None:
    deepest = None
    for levels in range(MAX_DEPTH + 2, 0, -1):
        try:
            check_args(nested(levels))
        except TypeError:
            continue
        deepest = nested(levels)
        break
    assert deepest is not None
    payload = {"class": "Deep", "args": deepest}
    assert json_nesting(payload) <= RUBY_MAX_NESTING


# --- check_args: accepted values ----------------------------------------------------------


def test_valid_json_passes_and_round_trips() -> None:
    args = [
        None,
        True,
        False,
        0,
        -(2**63),
        2**70,
        1.5,
        -0.0,
        1e308,
        "",
        "naïve ☃ 🎉",
        [],
        {},
        [1, [2, [3, {"deep": ["x", {"y": None}]}]]],
        {"ids": [1, 2, 3], "opts": {"dry_run": False, "ratio": 0.25}},
    ]
    check_args(args)
    assert json.loads(dumps(args)) == args


# --- decode ---------------------------------------------------------------------------------


def test_decode_reads_a_payload_from_str_or_bytes() -> None:
    text = '{"class":"HardJob","args":[1,"a"],"queue":"low","jid":"abc"}'
    for raw in (text, text.encode()):
        job = decode(raw)
        assert job == {"class": "HardJob", "args": [1, "a"], "queue": "low", "jid": "abc"}


def test_decode_allows_kwargs_null_or_absent() -> None:
    assert decode('{"class":"A","args":[],"kwargs":null}')["kwargs"] is None
    assert "kwargs" not in decode('{"class":"A","args":[]}')


def test_decode_allows_a_missing_queue() -> None:
    assert decode('{"class":"A","args":[]}')["class"] == "A"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "not valid JSON"),
        (b"", "not valid JSON"),
        ("not json", "not valid JSON"),
        ('{"class":"A","args":[1', "not valid JSON"),
        ('{"class":"A","args":[]} trailing', "not valid JSON"),
        (b'{"class":"A","args":["\xff"]}', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ("null", "not an object"),
        ("42", "not an object"),
        ('"text"', "not an object"),
        ('[{"class":"A","args":[]}]', "not an object"),
        ("{}", "no 'class'"),
        ('{"args":[]}', "no 'class'"),
        ('{"class":"","args":[]}', "no 'class'"),
        ('{"class":7,"args":[]}', "no 'class'"),
        ('{"class":"A"}', "'args' is missing or not a list"),
        ('{"class":"A","args":{"a":1}}', "'args' is missing or not a list"),
        ('{"class":"A","args":"1"}', "'args' is missing or not a list"),
        ('{"class":"A","args":[],"queue":""}', "'queue'"),
        ('{"class":"A","args":[],"queue":5}', "'queue'"),
        ('{"class":"A","args":[],"kwargs":[1,2]}', "'kwargs' is not an object"),
        ('{"class":"A","args":[],"kwargs":"x=1"}', "'kwargs' is not an object"),
    ],
)
def test_decode_refuses_what_is_not_a_job(raw: str | bytes, says: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(says)):
        decode(raw)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_decode_refuses_nan_and_infinity(constant: str) -> None:
    with pytest.raises(PayloadError):
        decode(f'{{"class":"A","args":[{constant}]}}')


# --- timestamps, jids, display names ------------------------------------------------------


def test_timestamp_reads_float_seconds_and_int_milliseconds() -> None:
    assert timestamp(1_700_000_000.25) == 1_700_000_000.25
    assert timestamp(1_700_000_000_123) == pytest.approx(1_700_000_000.123)
    assert timestamp(1_700_000_000) == 1_700_000_000.0
    assert type(timestamp(1_700_000_000)) is float
    assert timestamp(1.7e12) == pytest.approx(1.7e9)
    assert timestamp(0) == 0.0


@pytest.mark.parametrize("value", [None, "1700000000", True, False, [1], {"t": 1}])
def test_timestamp_of_a_non_number_is_none(value: Any) -> None:
    assert timestamp(value) is None


def test_new_jid_is_24_lowercase_hex_and_unique() -> None:
    jids = {new_jid() for _ in range(1000)}
    assert len(jids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{24}", jid) for jid in jids)


def test_new_jids_are_as_many_distinct_jids() -> None:
    jids = new_jids(500)
    assert len(jids) == len(set(jids)) == 500
    assert all(re.fullmatch(r"[0-9a-f]{24}", jid) for jid in jids)


def test_dumps_writes_what_the_standard_encoder_writes() -> None:
    # Floats Python and Ruby spell alike (1.5e+300); test_rubyjson has those they do not.
    reference = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    for value in ({"class": "A", "args": [1, -2.5, 1.5e300, "x\u2028y", None, True, {"k": []}],
                   "jid": "0" * 24, "created_at": 1700000000.123456},
                  [10**40, "\U0001f600", "é", [[[]]]], {"": {"a": {"b": 0.1}}}):
        assert dumps(value) == reference.encode(value)
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        dumps({"a": {1}})


def test_dumps_is_compact_writes_raw_utf8_and_refuses_nan() -> None:
    # Ruby's JSON.generate writes non-ASCII text as is; tests/interop compares every
    # escape with real Ruby.
    assert dumps({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps([float("nan")])


def test_dumps_escapes_a_lone_surrogate_rather_than_failing() -> None:
    # Not valid UTF-8, so Redis could not be sent it raw; the payload is written escaped.
    text = dumps({"error_message": "no such file: b\udcff", "x": "é"})
    assert text == '{"error_message":"no such file: b\\udcff","x":"\\u00e9"}'
    assert loads(text) == {"error_message": "no such file: b\udcff", "x": "é"}


def test_dumps_bytes_is_dumps_in_utf8() -> None:
    for value in ({"a": "é 日本 🎉"}, {"a": "plain"}, {"e": "b\udcff", "x": "é"}):
        assert dumps_bytes(value) == dumps(value).encode("utf-8")


def test_display_class_unwraps_wrappers() -> None:
    assert display_class({"class": "Wrapper", "wrapped": "RealJob"}) == "RealJob"
    assert display_class({"class": "W", "wrapped": "R", "display_class": "Shown"}) == "Shown"
    assert display_class({"class": "Plain"}) == "Plain"
    assert display_class({"class": "", "wrapped": None}) == "?"


def test_decode_reads_integers_of_any_size() -> None:
    # Ruby writes bignums of any length; Python's int() refuses over 4,300 digits at once.
    job = decode('{"class":"X","args":[' + "9" * 9000 + ",-" + "1" * 5000 + ",7]}")
    assert job["args"] == [10**9000 - 1, -int("1" * 2500) * (10**2500) - int("1" * 2500), 7]


def test_an_integer_past_the_digit_limit_makes_the_payload_unreadable() -> None:
    # Reading a million digits took seconds (a worker's scheduler stalled on one entry):
    # past MAX_INT_DIGITS the payload is refused, and goes to the dead set as unreadable.
    from sidequest.payload import MAX_INT_DIGITS

    longest = decode('{"class":"X","args":[' + "9" * MAX_INT_DIGITS + "]}")
    assert longest["args"] == [10**MAX_INT_DIGITS - 1]
    with pytest.raises(PayloadError, match=r"an integer of 1,000,000 digits \(at most 20,000\)"):
        decode('{"class":"X","args":[' + "9" * 1_000_000 + "]}")
    with pytest.raises(PayloadError, match="digits"):
        decode('{"class":"X","args":[-' + "9" * (MAX_INT_DIGITS + 1) + "]}")


def test_normalized_fills_in_what_sidekiqs_client_push_would() -> None:
    bare = {"class": "X", "args": [1]}
    job = normalized(bare, "low")
    assert bare == {"class": "X", "args": [1]}  # the input is left alone
    assert list(job)[:3] == ["queue", "class", "args"] and job["queue"] == "low"
    assert re.fullmatch(r"[0-9a-f]{24}", job["jid"])
    assert isinstance(job["created_at"], float) and abs(job["created_at"] - time.time()) < 60
    assert normalized(bare)["queue"] == "default"
    whole = {"class": "X", "args": [], "queue": "q", "jid": "j", "created_at": 1.5}
    assert normalized(whole, "other") is whole


def test_times_are_written_as_json_floats_even_on_a_whole_second() -> None:
    # Sidekiq 8 tells the formats apart by JSON type: a Float is seconds (6.x/7.x), an
    # Integer milliseconds. A whole second written as 1700000000 would read as 1970.
    text = dumps({"created_at": 1700000000.0, "failed_at": float(1_700_000_000)})
    assert text == '{"created_at":1700000000.0,"failed_at":1700000000.0}'
    assert timestamp(loads(text)["created_at"]) == 1700000000.0


@pytest.mark.parametrize(("ttl", "kept"), [
    (3600, 3600), (10**500, 86400), (1e17, 10 * 365 * 86400), (float("nan"), 86400),
    ("600", 86400), (True, 86400), (-5, 86400),
])
def test_a_status_ttl_is_always_one_redis_takes(ttl: object, kept: int) -> None:
    # A 500-digit result_ttl raised OverflowError and 1e17 made Redis refuse the EXPIRE, in
    # Retry now's move: odd values read as unset, huge ones are cut to ten years.
    from sidequest import status

    assert status.ttl_of({"result_ttl": ttl}) == kept
    assert status.ttl_of({"result_ttl": 60, "at": 10**500}) == 60
    assert status.ttl_of({"result_ttl": 60, "at": 1e300}) == 10 * 365 * 86400


def test_a_positive_integer_past_the_limit_is_refused_too() -> None:
    from sidequest.payload import MAX_INT_DIGITS

    with pytest.raises(PayloadError, match="digits"):
        decode('{"class":"X","args":[' + "9" * (MAX_INT_DIGITS + 1) + "]}")


@pytest.mark.parametrize("created", [time.time() - 120, int((time.time() - 120) * 1000)],
                         ids=["seconds (Sidekiq 6/7)", "milliseconds (Sidekiq 8)"])
def test_a_unique_lock_counted_from_a_push_long_ago_has_lapsed(created: float) -> None:
    assert unique.may_have_lapsed({"unique_for": 60, "created_at": created})
    assert not unique.may_have_lapsed({"unique_for": 600, "created_at": created})
    assert not unique.may_have_lapsed({"unique_for": True, "created_at": created})
    assert not unique.may_have_lapsed({"unique_for": 60, "created_at": "yesterday"})


def test_the_lapse_note_never_fails_a_job_that_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a Redis Cluster a slot moving raises outside RedisError; the job has already run,
    # and an error out of this diagnostic would have retried it (and run it twice).
    from redis.exceptions import SlotNotCoveredError

    class Moving:
        def get(self, name: str) -> None:
            raise SlotNotCoveredError("slot 1234 is not covered")

    monkeypatch.setattr(unique.connection, "client", Moving)
    unique.note_lapse({"class": "Lapsed", "jid": "a" * 24, "unique_digest": "d" * 64})
    assert "Lapsed" not in unique._lapse_told
