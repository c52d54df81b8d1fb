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
    base = count**4 + 15
    rng = random.Random(count)
    mirror = random.Random(count)
    delays = [backoff(count, rng) for _ in range(300)]
    assert delays == [float(base + mirror.randrange(10) * (count + 1)) for _ in range(300)]
    # Over 300 draws every jitter step appears, so both ends of the range are reached.
    assert min(delays) == base
    assert max(delays) == base + 9 * (count + 1)
    assert all((d - base) % (count + 1) == 0 for d in delays)


def test_backoff_without_rng_stays_in_bounds() -> None:
    assert all(15 <= backoff(0) <= 24 for _ in range(100))
    assert all(10_000 + 15 <= backoff(10) <= 10_000 + 15 + 99 for _ in range(100))


# --- max_attempts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, 25), (None, 25), ("yes", 25), (False, None), (0, 0), (3, 3), (-2, 0)],
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
    assert actions == ["retry"] * 25 + ["dead"]
    assert current["retry_count"] == 25


def test_payload_without_retry_uses_the_class_default() -> None:
    assert decide(job(), ValueError(), NOW, default_retry=False).action == "drop"
    exhausted = job(retry_count=1)
    assert decide(exhausted, ValueError(), NOW, default_retry=2).action == "dead"
    assert decide(exhausted, ValueError(), NOW, default_retry=3).action == "retry"


def test_retry_false_drops_without_a_dead_entry() -> None:
    decision = decide(job(retry=False), ValueError("gone"), NOW)
    assert decision.action == "drop"
    assert decision.job["error_message"] == "gone"


def test_retry_zero_goes_straight_to_the_dead_set() -> None:
    decision = decide(job(retry=0), ValueError(), NOW)
    assert decision.action == "dead"
    assert decision.job["retry_count"] == 0


def test_retry_n_allows_exactly_n_retries() -> None:
    current, actions = job(retry=3), []
    for _ in range(5):
        decision = decide(current, ValueError(), NOW)
        actions.append(decision.action)
        current = decision.job
        if decision.action != "retry":
            break
    assert actions == ["retry", "retry", "retry", "dead"]


def test_dead_false_drops_instead_of_the_dead_set() -> None:
    assert decide(job(retry=0, dead=False), ValueError(), NOW).action == "drop"
    assert decide(job(retry=1, retry_count=0, dead=False), ValueError(), NOW).action == "drop"
    assert decide(job(retry=1, dead=False), ValueError(), NOW).action == "retry"


def test_retry_queue_moves_the_retry_to_another_queue() -> None:
    decision = decide(job(retry_queue="retries"), ValueError(), NOW)
    assert decision.job["queue"] == "retries"
    assert decide(job(), ValueError(), NOW).job["queue"] == "mailers"
    assert decide(job(retry_queue=None), ValueError(), NOW).job["queue"] == "mailers"


# --- decide: the retry_in hook's answer ---------------------------------------------------


def test_retry_in_seconds_replaces_the_backoff_but_keeps_jitter() -> None:
    rng = random.Random(5)
    decision = decide(job(retry_count=2), ValueError(), NOW, retry_in=120, rng=rng)
    count = 3
    assert decision.action == "retry"
    assert decision.at == NOW + 120 + random.Random(5).randrange(10) * (count + 1)


def test_retry_in_float_seconds() -> None:
    decision = decide(job(), ValueError(), NOW, retry_in=2.5, rng=random.Random(0))
    assert decision.at == NOW + 2.5 + random.Random(0).randrange(10)


@pytest.mark.parametrize("answer", [None, 0, -5, True, "soon"])
def test_other_retry_in_answers_use_the_default_backoff(answer: Any) -> None:
    decision = decide(job(), ValueError(), NOW, retry_in=answer, rng=random.Random(3))
    assert decision.action == "retry"
    assert decision.at == NOW + backoff(0, random.Random(3))


def test_retry_in_kill_sends_to_the_dead_set_now() -> None:
    assert decide(job(retry=10), ValueError(), NOW, retry_in="kill").action == "dead"
    assert decide(job(retry=10, dead=False), ValueError(), NOW, retry_in="kill").action == "drop"


def test_retry_in_discard_drops_the_job() -> None:
    decision = decide(job(retry=10), ValueError("x"), NOW, retry_in="discard")
    assert decision.action == "drop"


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


@pytest.mark.parametrize("option", [False, 0, None])
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
