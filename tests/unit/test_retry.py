"""sidequest.retry: Sidekiq's retry policy as pure functions."""

from __future__ import annotations

import base64
import json
import random
import zlib
from typing import Any

import pytest

from sidequest import morgue
from sidequest.retry import (
    DEFAULT_MAX_RETRIES,
    MAX_MESSAGE,
    UNREADABLE_MESSAGE,
    backoff,
    decide,
    decode_backtrace,
    encode_backtrace,
    error_class,
    error_message,
    max_attempts,
    scrub,
)

NOW = 1_700_000_000.0


def job(**fields: Any) -> dict[str, Any]:
    return {"class": "SendWelcome", "args": [42], "queue": "mailers", "jid": "a" * 24, **fields}


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a real traceback, raised three frames deep."""

    def outer() -> None:
        middle()

    def middle() -> None:
        innermost()

    def innermost() -> None:
        raise exc

    try:
        outer()
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


# --- backoff --------------------------------------------------------------------------------


@pytest.mark.parametrize("count", range(25))
def test_backoff_is_count_to_the_fourth_plus_15_plus_jitter(count: int) -> None:
    """Sidekiq 8's jitter: any whole second in [0, 10 * (count + 1)), not steps of count+1."""
    base = count**4 + 15
    rng = random.Random(count)
    mirror = random.Random(count)
    delays = [backoff(count, rng) for _ in range(3000)]
    assert delays == [float(base + mirror.randrange(10 * (count + 1))) for _ in range(3000)]
    assert min(delays) >= base
    assert max(delays) <= base + 10 * (count + 1) - 1
    if count >= 1:  # not only multiples of count + 1, as Sidekiq 6 and 7 drew
        assert any((d - base) % (count + 1) for d in delays)


def test_backoff_without_rng_stays_in_bounds() -> None:
    assert all(15 <= backoff(0) <= 24 for _ in range(100))
    assert all(10_000 + 15 <= backoff(10) <= 10_000 + 15 + 109 for _ in range(100))


# --- max_attempts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, 25), (None, None), ("yes", 25), (False, None), (0, 0), (3, 3), (-2, -2)],
)
def test_max_attempts_follows_ruby_truthiness(value: Any, expected: int | None) -> None:
    assert max_attempts(value) == expected


# --- decide: the retry count and timestamps -----------------------------------------------


def test_first_failure_schedules_a_retry_with_sidekiq_fields() -> None:
    rng = random.Random(1)
    decision = decide(job(retry=True), raised(ValueError("bad input")), NOW, rng=rng)
    assert decision.action == "retry"
    failed = decision.job
    assert failed["retry_count"] == 0
    assert failed["failed_at"] == NOW
    assert "retried_at" not in failed
    assert failed["error_message"] == "bad input"
    assert failed["error_class"] == "ValueError"
    assert "error_backtrace" not in failed
    assert decision.at == NOW + backoff(0, random.Random(1))


def test_later_failures_count_up_and_keep_failed_at() -> None:
    first = decide(job(), ValueError("1"), NOW).job
    second = decide(first, ValueError("2"), NOW + 60).job
    third = decide(second, ValueError("3"), NOW + 600).job
    assert [first["retry_count"], second["retry_count"], third["retry_count"]] == [0, 1, 2]
    assert third["failed_at"] == NOW
    assert second["retried_at"] == NOW + 60
    assert third["retried_at"] == NOW + 600
    assert third["error_message"] == "3"


def test_the_input_payload_is_not_changed() -> None:
    original = job(retry=2, retry_count=0, retry_queue="slow")
    snapshot = json.loads(json.dumps(original))
    decide(original, ValueError("x"), NOW)
    assert original == snapshot


def test_default_is_25_retries_then_the_dead_set() -> None:
    assert DEFAULT_MAX_RETRIES == 25
    current = job(retry=True)
    actions = []
    for attempt in range(27):
        decision = decide(current, ValueError("again"), NOW + attempt)
        actions.append(decision.action)
        current = decision.job
        if decision.action != "retry":
            break
    assert actions == ["retry"] * 25 + ["exhausted"]
    assert current["retry_count"] == 25


@pytest.mark.parametrize("limit", [0, 2, 7])
def test_max_retries_is_the_limit_for_retry_true(limit: int) -> None:
    current, actions = job(retry=True), []
    for _ in range(limit + 3):
        decision = decide(current, ValueError(), NOW, max_retries=limit)
        actions.append(decision.action)
        current = decision.job
        if decision.action != "retry":
            break
    assert actions == ["retry"] * limit + ["exhausted"]
    # An explicit count in the payload wins over the setting.
    assert decide(job(retry=3, retry_count=1), ValueError(), NOW, max_retries=0).action == "retry"


def test_payload_without_retry_uses_the_class_default() -> None:
    assert decide(job(), ValueError(), NOW, default_retry=False).action == "off"
    exhausted = job(retry_count=1)
    assert decide(exhausted, ValueError(), NOW, default_retry=2).action == "exhausted"
    assert decide(exhausted, ValueError(), NOW, default_retry=3).action == "retry"


def test_retry_null_means_the_class_default_as_in_ruby() -> None:
    assert decide(job(retry=None), ValueError(), NOW, default_retry=False).action == "off"
    assert decide(job(retry=None), ValueError(), NOW).action == "retry"
    spent = job(retry=None, retry_count=1)
    assert decide(spent, ValueError(), NOW, default_retry=2).action == "exhausted"


def test_retry_false_is_off_and_never_asks_retry_in() -> None:
    asked: list[int] = []
    decision = decide(job(retry=False), ValueError("gone"), NOW,
                      retry_in=lambda count, exc, payload: asked.append(count))
    assert decision.action == "off"
    assert asked == []


def test_retry_zero_goes_straight_to_the_dead_set() -> None:
    decision = decide(job(retry=0), ValueError(), NOW)
    assert decision.action == "exhausted"
    assert decision.job["retry_count"] == 0


def test_retry_n_allows_exactly_n_retries() -> None:
    current, actions = job(retry=3), []
    for _ in range(5):
        decision = decide(current, ValueError(), NOW)
        actions.append(decision.action)
        current = decision.job
        if decision.action != "retry":
            break
    assert actions == ["retry", "retry", "retry", "exhausted"]


def test_retry_queue_moves_the_retry_to_another_queue() -> None:
    decision = decide(job(retry_queue="retries"), ValueError(), NOW)
    assert decision.job["queue"] == "retries"
    assert decide(job(), ValueError(), NOW).job["queue"] == "mailers"
    assert decide(job(retry_queue=None), ValueError(), NOW).job["queue"] == "mailers"


# --- decide: the retry_in hook's answer ---------------------------------------------------


def answer(value: Any) -> Any:
    """A retry_in hook that always gives ``value``."""
    return lambda count, exc, payload: value


def test_retry_in_seconds_replaces_the_backoff_but_keeps_jitter() -> None:
    rng = random.Random(5)
    decision = decide(job(retry_count=2), ValueError(), NOW, retry_in=answer(120), rng=rng)
    count = 3
    assert decision.action == "retry"
    assert decision.at == NOW + 120 + random.Random(5).randrange(10 * (count + 1))


def test_retry_in_gets_the_count_the_error_and_the_recorded_payload() -> None:
    seen: list[Any] = []
    error = ValueError("x")
    decide(job(retry_count=4), error, NOW,
           retry_in=lambda count, exc, payload: seen.append((count, exc, payload)))
    [(count, exc, payload)] = seen
    assert (count, exc, payload["retry_count"], payload["error_message"]) == (5, error, 5, "x")


def test_retry_in_float_seconds_are_truncated_as_ruby_to_i() -> None:
    decision = decide(job(), ValueError(), NOW, retry_in=answer(2.9), rng=random.Random(0))
    assert decision.at == NOW + 2 + random.Random(0).randrange(10)
    decision = decide(job(), ValueError(), NOW, retry_in=answer(0.5), rng=random.Random(0))
    assert decision.at == NOW + backoff(0, random.Random(0))


@pytest.mark.parametrize("value", [None, 0, -5, "soon", float("nan"), float("inf")])
def test_other_retry_in_answers_use_the_default_backoff(value: Any) -> None:
    decision = decide(job(), ValueError(), NOW, retry_in=answer(value), rng=random.Random(3))
    assert decision.action == "retry"
    assert decision.at == NOW + backoff(0, random.Random(3))


@pytest.mark.parametrize(("value", "logged"), [
    ("soon", True), ("Kill", True), (True, True), (None, False), (0, False), (30, False)])
def test_an_answer_that_is_no_answer_is_logged(value: Any, logged: bool,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A typo in a retry_in hook's answer would otherwise pass for a hook that works."""
    with caplog.at_level("WARNING", logger="sidequest"):
        decide(job(), ValueError(), NOW, retry_in=answer(value))
    warned = [r.getMessage() for r in caplog.records]
    assert bool(warned) is logged
    if logged:
        assert warned == [f"SendWelcome.retry_in returned {value!r}, which is not seconds, 'kill',"
                          " 'discard' or None: the default backoff applies"]


def test_retry_in_kill_means_exhausted_now() -> None:
    decision = decide(job(retry=10), ValueError(), NOW, retry_in=answer("kill"))
    assert decision.action == "exhausted"


def test_retry_in_discard_drops_the_job_and_marks_it() -> None:
    decision = decide(job(retry=10), ValueError("x"), NOW, retry_in=answer("discard"))
    assert decision.action == "discard"
    assert decision.job["discarded_at"] == NOW


def test_exhaustion_is_checked_before_retry_in_is_asked() -> None:
    """Sidekiq's order: on the last try the hook is not called, so a "discard" there cannot
    keep the job from the exhausted hook and the dead set."""
    asked: list[int] = []

    def hook(count: int, exc: BaseException, payload: Any) -> str:
        asked.append(count)
        return "discard"

    assert decide(job(retry=2, retry_count=0), ValueError(), NOW, retry_in=hook).action == "discard"
    assert decide(job(retry=2, retry_count=1), ValueError(), NOW, retry_in=hook).action \
        == "exhausted"
    assert asked == [1]


# --- retry_for: a time window instead of a count ------------------------------------------


def test_retry_for_ignores_the_count_while_inside_the_window() -> None:
    failed_at = NOW - 3000
    payload = job(retry=1, retry_count=5, retry_for=3600, failed_at=failed_at)
    assert decide(payload, ValueError(), NOW).action == "retry"


def test_retry_for_is_exhausted_once_the_window_since_the_first_failure_is_past() -> None:
    payload = job(retry=True, retry_count=1, retry_for=3600, failed_at=NOW - 3601)
    decision = decide(payload, ValueError(), NOW)
    assert decision.action == "exhausted"
    assert decision.job["failed_at"] == NOW - 3601  # the first failure, kept


def test_retry_for_reads_sidekiq_8_milliseconds_and_older_float_seconds() -> None:
    in_ms = job(retry_count=0, retry_for=60, failed_at=int((NOW - 61) * 1000))
    assert decide(in_ms, ValueError(), NOW).action == "exhausted"
    in_ms_recent = job(retry_count=0, retry_for=60, failed_at=int((NOW - 30) * 1000))
    assert decide(in_ms_recent, ValueError(), NOW).action == "retry"
    in_seconds = job(retry_count=0, retry_for=60, failed_at=NOW - 61.5)
    assert decide(in_seconds, ValueError(), NOW).action == "exhausted"


def test_retry_for_zero_is_a_window_too_as_ruby_zero_is_true() -> None:
    payload = job(retry=5, retry_count=0, retry_for=0, failed_at=NOW - 1)
    assert decide(payload, ValueError(), NOW).action == "exhausted"
    assert decide(job(retry=5, retry_count=0, retry_for=None, failed_at=NOW - 1), ValueError(),
                  NOW).action == "retry"


def test_retry_for_on_the_first_failure_starts_the_window() -> None:
    decision = decide(job(retry_for=1), ValueError(), NOW)
    assert decision.action == "retry"
    assert decide(decision.job, ValueError(), NOW + 2).action == "exhausted"


# --- what is stored about the error -------------------------------------------------------


def test_error_message_is_cut_at_10000_characters() -> None:
    assert MAX_MESSAGE == 10_000
    failed = decide(job(), ValueError("é" * 25_000), NOW).job
    assert failed["error_message"] == "é" * 10_000
    assert error_message(ValueError("short")) == "short"
    assert error_message(ValueError("x" * 10_000)) == "x" * 10_000


def test_an_exception_whose_str_raises_gets_a_placeholder() -> None:
    assert error_message(UnprintableError()) == UNREADABLE_MESSAGE
    failed = decide(job(), UnprintableError(), NOW).job
    assert failed["error_message"] == "!!! ERROR MESSAGE THREW AN ERROR !!!"
    assert failed["error_class"] == f"{__name__}.UnprintableError"


def test_an_exception_without_arguments_has_its_class_name_as_message() -> None:
    assert error_message(KeyError()) == "KeyError"
    assert error_message(UnprintableError.__mro__[1]()) == "Exception"
    assert error_message(ValueError("")) == ""  # an explicit empty message stays empty


def test_lone_surrogates_are_replaced_as_ruby_scrub_does() -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    exc = raised(OSError(f"cannot read {name}"))  # as code listing a directory would write
    failed = decide(job(backtrace=True), exc, NOW).job
    assert failed["error_message"] == "cannot read caf\ufffd.txt"
    body = json.dumps(failed, ensure_ascii=False)
    body.encode("utf-8")  # would raise on a lone surrogate
    assert scrub("a\ud800b") == "a\ufffd\ufffd\ufffdb"  # a UTF-16 half is invalid UTF-8
    assert scrub("ok é 😀") == "ok é 😀"


def test_backtrace_lines_are_scrubbed() -> None:
    def boom() -> None:
        raise ValueError("x")

    boom.__code__ = boom.__code__.replace(co_filename="/srv/\udce9.py")
    try:
        boom()
    except ValueError as exc:
        failed = decide(job(backtrace=True), exc, NOW).job
    lines = decode_backtrace(failed["error_backtrace"])
    assert lines[0].startswith("/srv/\ufffd.py:")


def test_error_class_is_qualified_except_for_builtins() -> None:
    assert error_class(KeyError("k")) == "KeyError"
    assert error_class(json.JSONDecodeError("m", "d", 0)) == "json.decoder.JSONDecodeError"
    assert error_class(UnprintableError()) == f"{__name__}.UnprintableError"


def test_backtrace_true_stores_every_frame_innermost_first() -> None:
    failed = decide(job(backtrace=True), raised(ValueError("x")), NOW).job
    encoded = failed["error_backtrace"]
    assert "\n" not in encoded
    assert base64.b64decode(encoded, validate=True)  # strict Base64
    lines = decode_backtrace(encoded)
    assert lines == json.loads(zlib.decompress(base64.b64decode(encoded)))
    names = [line.rsplit("in `", 1)[1] for line in lines]
    assert names == ["innermost'", "middle'", "outer'", "raised'"]
    assert lines[0].startswith(__file__.rstrip("c") + ":")


def test_backtrace_n_keeps_the_innermost_n_lines() -> None:
    failed = decide(job(backtrace=2), raised(ValueError("x")), NOW).job
    lines = decode_backtrace(failed["error_backtrace"])
    assert [line.rsplit("in `", 1)[1] for line in lines] == ["innermost'", "middle'"]


def test_backtrace_zero_is_true_in_ruby_and_keeps_no_lines() -> None:
    failed = decide(job(backtrace=0), raised(ValueError("x")), NOW).job
    assert decode_backtrace(failed["error_backtrace"]) == []
    failed = decide(job(backtrace=-1), raised(ValueError("x")), NOW).job
    assert len(decode_backtrace(failed["error_backtrace"])) == 3


@pytest.mark.parametrize("option", [False, None])
def test_no_backtrace_unless_asked(option: Any) -> None:
    fields = {} if option is None else {"backtrace": option}
    assert "error_backtrace" not in decide(job(**fields), raised(ValueError()), NOW).job


# --- reading backtraces Sidekiq wrote -----------------------------------------------------


LINES = [f"/app/jobs/hard_job.rb:{n}:in `perform'" for n in range(40)]


def test_encode_then_decode_round_trips() -> None:
    assert decode_backtrace(encode_backtrace(LINES)) == LINES
    assert decode_backtrace(encode_backtrace([])) == []


def test_decode_reads_newline_base64_as_ruby_encode64_writes() -> None:
    strict = encode_backtrace(LINES)
    # Ruby's Base64.encode64 (Sidekiq < 7.2.1) ends every 60 characters with a newline.
    with_newlines = "".join(strict[i : i + 60] + "\n" for i in range(0, len(strict), 60))
    assert with_newlines.count("\n") >= 3
    assert decode_backtrace(with_newlines) == LINES


def test_decode_reads_raw_arrays_of_old_sidekiq() -> None:
    assert decode_backtrace(["a.rb:1:in `x'", 7]) == ["a.rb:1:in `x'", "7"]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        42,
        {"a": 1},
        "not base64 !!",
        base64.b64encode(b"not zlib").decode(),
        base64.b64encode(zlib.compress(b"not json")).decode(),
        base64.b64encode(zlib.compress(b"\xff\xfe")).decode(),
        base64.b64encode(zlib.compress(b'{"a": 1}')).decode(),
    ],
)
def test_decode_of_garbage_is_empty(value: Any) -> None:
    assert decode_backtrace(value) == []


def test_decode_of_deeply_nested_json_is_empty() -> None:
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    assert decode_backtrace(base64.b64encode(zlib.compress(deep)).decode()) == []


def test_module_constants_match_sidekiq() -> None:
    assert morgue.DEAD_MAX_JOBS == 10_000
    assert morgue.DEAD_TIMEOUT == 180 * 24 * 3600
