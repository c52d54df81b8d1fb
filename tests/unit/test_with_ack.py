"""What a job's end records with its acknowledgement: only steps the guards marked are
taken (a payload crafted with the same key brings none), each once; a failure drops them."""

from __future__ import annotations

from typing import Any

from sidequest import status
from sidequest.worker import with_ack

KEY = "\x00sq_with_ack"


def test_steps_are_taken_once_in_order() -> None:
    seen: list[str] = []
    payload: dict[str, Any] = {"jid": "j"}
    with_ack.add(payload, lambda pipe: seen.append("first"))
    with_ack.add(payload, lambda pipe: seen.append("second"))
    for step in with_ack.take(payload):
        step(None)
    assert seen == ["first", "second"] and with_ack.take(payload) == []


def test_a_crafted_payload_with_the_key_brings_no_step() -> None:
    assert with_ack.take({"jid": "j", KEY: "not a list"}) == []
    assert with_ack.take({"jid": "j", KEY: [1, "two", None]}) == []


def test_a_failure_discards_what_a_success_would_have_written() -> None:
    payload: dict[str, Any] = {"jid": "j"}
    with_ack.add(payload, lambda pipe: None)
    with_ack.discard(payload)
    assert KEY not in payload and with_ack.take(payload) == []


def test_a_result_ttl_past_any_number_is_the_default() -> None:
    assert status.ttl_of({"result_ttl": float("inf")}) == status.DEFAULT_TTL


def test_a_failed_run_marked_over_limit_writes_no_mark() -> None:
    # A run a full limiter sent back that then failed after all (a JobTimeout landing late):
    # its retry entry must not carry the mark, or every later run would read as over limit.
    from sidequest import limiter
    from sidequest.payload import dumps

    payload = {"class": "C", "jid": "j", "args": []}
    limiter.mark_rescheduled(payload)
    with_ack.discard(payload)
    assert not limiter.rescheduled(payload) and "sq_overlimit" not in dumps(payload)
