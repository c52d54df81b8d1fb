"""Options in seconds take a ``datetime.timedelta`` too, as ``perform_in`` does, wherever
they are given: a class attribute, ``@job(...)``, ``.set(...)`` and ``sidequest.enqueue``.
The payload carries seconds (it is JSON)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

import sidequest
from sidequest import Job, job
from sidequest.errors import ConfigError

DURATIONS = ("unique_for", "expires_in", "timeout", "result_ttl")
HOUR = timedelta(hours=1)



def durations(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's durations in seconds (expires_in travels as the epoch expires_at)."""
    json.dumps(payload)  # what is written must be JSON
    found = {key: payload[key] for key in DURATIONS if key in payload}
    if "expires_at" in payload:
        found["expires_in"] = round(payload["expires_at"] - payload["created_at"], 1)
    return found


EXPECTED = {"unique_for": 3600.0, "expires_in": 3600.0, "timeout": 3600.0,
            "result_ttl": 3600.0}


def test_class_attributes(pushed: list[dict[str, Any]]) -> None:
    class ODTimed(Job):
        unique_for = HOUR
        expires_in = HOUR
        timeout = HOUR
        result_ttl = HOUR
        store_result = True

        def perform(self) -> None:
            pass

    assert ODTimed.timeout == 3600.0  # read as seconds by whatever looks at the class
    ODTimed.perform_async()
    assert durations(pushed[0]) == EXPECTED


def test_job_decorator_options(pushed: list[dict[str, Any]]) -> None:
    @job(unique_for=HOUR, expires_in=HOUR, timeout=HOUR, result_ttl=HOUR, store_result=True)
    def od_timed() -> None:
        pass

    od_timed.perform_async()
    assert durations(pushed[0]) == EXPECTED


def test_set_options(pushed: list[dict[str, Any]]) -> None:
    class ODPlain(Job):
        def perform(self) -> None:
            pass

    ODPlain.set(**dict.fromkeys(DURATIONS, HOUR), store_result=True).perform_async()
    assert durations(pushed[0]) == EXPECTED


def test_enqueue_options(pushed: list[dict[str, Any]]) -> None:
    sidequest.enqueue("tests.ODByName", **dict.fromkeys(DURATIONS, HOUR), store_result=True)
    assert durations(pushed[0]) == EXPECTED


@pytest.mark.parametrize("option", DURATIONS)
@pytest.mark.parametrize("value", [timedelta(0), timedelta(seconds=-5)])
def test_a_timedelta_of_zero_or_less_is_refused(option: str, value: timedelta) -> None:
    with pytest.raises(ConfigError, match=rf"{option}=.* \(or a timedelta\) above 0"):
        sidequest.enqueue("tests.ODByName", **{option: value})


def test_unique_for_past_what_a_lock_holds_is_refused_as_a_timedelta_too() -> None:
    with pytest.raises(ConfigError, match="too long"):
        sidequest.enqueue("tests.ODByName", unique_for=timedelta(days=365 * 40))
