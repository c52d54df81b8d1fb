"""Keyword arguments: ``SendWelcome.perform_async(42, template="promo")`` travels in a
``kwargs`` payload key and reaches ``perform`` as keywords; a call ``perform`` cannot take is
refused at the push, naming the job and its signature."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from sidequest import Job, job, testing

RUNS: list[tuple[int, str]] = []


class KwWelcome(Job):
    def perform(self, user_id: int, template: str = "welcome") -> None:
        RUNS.append((user_id, template))


@job(queue="low")
def kw_clear(key: str, *, deep: bool = False) -> None:
    RUNS.append((0, f"{key}:{deep}"))


class KwKeyed(Job):
    def perform(self, user_id: int, *, key: str) -> None:  # key has no default
        RUNS.append((user_id, key))


class KwMany(Job):
    def perform(self, first: int, *rest: int) -> None:
        RUNS.append((first, str(rest)))


class KwStatic(Job):
    @staticmethod
    def perform(*, key: str) -> None:  # no self: nothing may be dropped as one
        RUNS.append((0, key))


@pytest.fixture(autouse=True)
def fake() -> Iterator[None]:
    RUNS.clear()
    with testing.fake():
        yield
    testing.clear_all()


def test_keywords_travel_in_the_payload_and_reach_perform() -> None:
    KwWelcome.perform_async(42, template="promo")
    KwWelcome.set(queue="critical").perform_in(60, 7, template="late")
    KwWelcome.perform_at(datetime(2030, 1, 1, tzinfo=timezone.utc), 8, template="new year")
    payloads = KwWelcome.jobs
    assert [p["kwargs"] for p in payloads] == [
        {"template": "promo"}, {"template": "late"}, {"template": "new year"}]
    assert KwWelcome.drain() == 3
    assert RUNS == [(42, "promo"), (7, "late"), (8, "new year")]


def test_a_positional_push_writes_no_kwargs_key() -> None:
    KwWelcome.perform_async(42, "welcome")
    assert "kwargs" not in KwWelcome.jobs[0]


def test_function_jobs_take_keywords_too() -> None:
    kw_clear.perform_async("home", deep=True)
    assert kw_clear.jobs[0]["kwargs"] == {"deep": True}
    kw_clear.drain()
    assert RUNS == [(0, "home:True")]
    with testing.inline():
        kw_clear.perform_async("x")
    assert RUNS[-1] == (0, "x:False")


@pytest.mark.parametrize(("call", "says"), [
    (KwWelcome.perform_async, r"KwWelcome\.perform\(user_id, template='welcome'\) cannot"),
    (lambda: KwWelcome.perform_async(1, colour="red"), "no parameter named 'colour'"),
    (lambda: KwWelcome.perform_async(1, 2, 3), "too many positional arguments"),
    (lambda: kw_clear.perform_async("k", True), "too many positional arguments"),
    (lambda: KwKeyed.perform_async(1), "missing a required (keyword-only )?argument: 'key'"),
    (KwMany.perform_async, "missing a required argument: 'first'"),
    (KwStatic.perform_async, "too many positional arguments"),
])
def test_a_call_perform_cannot_take_is_refused_at_the_push(call: Any, says: str) -> None:
    with pytest.raises(TypeError, match=says):
        call()
    assert KwWelcome.jobs == [] and kw_clear.jobs == []


def test_positional_pushes_that_fit_are_taken() -> None:
    KwMany.perform_async(1, 2, 3, 4)
    KwKeyed.perform_async(1, key="k")
    KwWelcome.perform_async(1, "hi")
    assert [job["args"] for job in (*KwMany.jobs, *KwKeyed.jobs, *KwWelcome.jobs)] == [
        [1, 2, 3, 4], [1], [1, "hi"]]


def test_keyword_values_must_be_json_native() -> None:
    with pytest.raises(TypeError, match=r"kwargs\['template'\].*datetime"):
        KwWelcome.perform_async(1, template=datetime.now(timezone.utc))
