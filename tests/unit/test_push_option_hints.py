"""What belongs to the push, given as an option, is refused with how to pass it: arguments
(``enqueue(..., kwargs=...)``, ``.set(args=...)``) were told "did you mean 'tags'?", and
``.set(at=...)``/``.set(wait=5)`` now point at perform_at/perform_in as ``delay`` does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import sidequest
from sidequest import Job, job
from sidequest.errors import ConfigError


class PHJob(Job):
    def perform(self, n: int, key: int = 0) -> None:
        pass


@job
def ph_function(n: int) -> None:
    pass


SETTERS: dict[str, Callable[..., Any]] = {
    "Job.set": PHJob.set,
    "@job .set": ph_function.set,
    "enqueue": lambda **options: sidequest.enqueue("tests.PHJob", 1, **options),
}


@pytest.mark.parametrize("call", SETTERS.values(), ids=SETTERS.keys())
@pytest.mark.parametrize(("option", "says"), [
    ("args", r"arguments are not an option: pass them to the push.*perform_async\(1, 2\)"),
    ("kwargs", r"keyword arguments go to the push by name.*enqueue\(\) passes positional"),
])
def test_arguments_given_as_options_say_how_arguments_are_passed(
        call: Callable[..., Any], option: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        call(**{option: [1, 2] if option == "args" else {"key": 2}})
    assert "did you mean" not in str(raised.value)
    assert raised.match(says)


@pytest.mark.parametrize("call", [PHJob.set, ph_function.set], ids=["Job.set", "@job .set"])
@pytest.mark.parametrize(("option", "method"), [
    ("at", "perform_at"), ("run_at", "perform_at"), ("wait_until", "perform_at"),
    ("wait", "perform_in"), ("delay", "perform_in"), ("countdown", "perform_in"),
])
def test_a_time_given_to_set_points_at_the_push_that_takes_it(
        call: Callable[..., Any], option: str, method: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown option '{option}'; push with {method}\("):
        call(**{option: 5})


def test_a_class_may_still_have_constants_of_those_names() -> None:
    class PHConstants(Job):
        args = ("a", "b")
        wait = 5
        at = "noon"

        def perform(self) -> None:
            pass

    assert PHConstants.wait == 5


@pytest.mark.parametrize("call", SETTERS.values(), ids=SETTERS.keys())
@pytest.mark.parametrize(("option", "says"), [
    ("depends_on", r"a batch callback: push them in a sidequest.Batch\(on_success="),
    ("on_failure", r"retries_exhausted\(payload, exc\).*sidequest.on_death"),
    ("meta", r"self.set_progress\(fraction, message\)"),
    ("job_id", r"the option is jid"),
    ("at_front", r"give urgent jobs a queue of their own"),
])
def test_rqs_enqueue_options_say_what_to_use_here(call: Callable[..., Any], option: str,
                                                 says: str) -> None:
    # Before: "did you mean 'expires_in'?" for depends_on, the option list for the others.
    with pytest.raises(ConfigError, match=says):
        call(**{option: 1})


def test_a_job_class_may_hold_constants_named_as_rqs_options() -> None:
    class Holds(Job):
        meta = {"owner": "billing"}
        on_success = "notify"

        def perform(self) -> None:
            pass

    assert Holds.meta == {"owner": "billing"}
