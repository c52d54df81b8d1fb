"""``@job`` used on what it cannot make a job of, and ``perform_bulk`` given no list: each
says what to write instead, rather than an AttributeError or "'NoneType' object is not
iterable" from deep inside."""

from __future__ import annotations

from typing import Any

import pytest

from sidequest import Job, job


class DMAlready(Job):
    def perform(self) -> None:
        pass


def test_a_queue_given_by_position_says_to_name_it() -> None:
    with pytest.raises(TypeError, match=r"@job\('low'\).*write @job\(queue='low'\)"):
        @job("low")  # type: ignore[call-overload]  # RQ's @job('low')
        def send(n: int) -> None:
            pass


def test_a_job_class_is_refused() -> None:
    with pytest.raises(TypeError, match=r"DMAlready: it is a Job class already.*remove @job"):
        job(DMAlready)


def test_a_job_class_is_refused_by_job_with_options_too() -> None:
    with pytest.raises(TypeError, match="it is a Job class already"):
        job(queue="low")(DMAlready)


def test_a_job_function_is_refused() -> None:
    @job
    def dm_once() -> None:
        pass

    with pytest.raises(TypeError, match=r"an @job function already; apply @job once"):
        job(dm_once)


def test_something_not_callable_is_refused() -> None:
    with pytest.raises(TypeError, match=r"@job turns a function into a job, but got int 5"):
        job(5)  # type: ignore[call-overload]


def test_a_plain_function_is_still_a_job() -> None:
    @job(queue="low")
    def dm_plain(n: int) -> int:
        return n

    assert dm_plain(2) == 2 and dm_plain.job_class.queue == "low"


@job
def dm_bulk(n: int) -> None:
    pass


@pytest.mark.parametrize("given", [None, "abc", {"a": [1]}, 5])
@pytest.mark.parametrize("push", [DMAlready.perform_bulk, dm_bulk.perform_bulk,
                                  DMAlready.set(queue="low").perform_bulk],
                         ids=["class", "function", "set"])
def test_perform_bulk_without_a_list_says_what_it_takes(push: Any, given: Any) -> None:
    with pytest.raises(TypeError, match=r"perform_bulk takes a list of argument lists, one per"
                                        r" job, such as \[\[1\], \[2\], \[3\]\]"):
        push(given)
