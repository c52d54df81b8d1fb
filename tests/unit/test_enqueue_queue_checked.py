"""``sidequest.enqueue``'s own ``queue`` parameter is checked as ``.set(queue=...)`` is: a
name no worker may serve (``sidequest -q "a b"`` refuses it) is refused at the push."""

from __future__ import annotations

from typing import Any

import pytest

import sidequest
from sidequest import Job, middleware
from sidequest.errors import ConfigError


class EQWorker(Job):
    def perform(self, n: int) -> None:
        pass



@pytest.mark.parametrize("queue", ["a b", "", "low\n", "ünïcode"])
def test_a_queue_no_worker_can_serve_is_refused_as_set_refuses_it(
        queue: str, pushed: list[dict[str, Any]]) -> None:
    with pytest.raises(ConfigError) as by_set:
        EQWorker.set(queue=queue)
    with pytest.raises(ConfigError) as by_name:
        sidequest.enqueue("tests.EQWorker", 1, queue=queue)
    # The same complaint, after the name of the call that made it.
    assert str(by_name.value).split(": ", 1)[1] == str(by_set.value).split(": ", 1)[1]
    assert str(by_name.value).startswith("enqueue(): option queue=")
    assert pushed == []


def test_a_good_queue_still_goes_where_it_is_told(pushed: list[dict[str, Any]]) -> None:
    jid = sidequest.enqueue("tests.EQWorker", 1, queue="mail.low-2:x")
    assert [(job["jid"], job["queue"]) for job in pushed] == [(jid, "mail.low-2:x")]


def test_a_cancelled_push_returns_none_not_an_empty_string(
        pushed: list[dict[str, Any]]) -> None:
    """A push that writes nothing answers None, as perform_async does (the README: a
    duplicate unique push "writes nothing and returns None")."""
    def cancel(job: Any, queue: str, call_next: Any) -> None:
        return None

    middleware.client.add(cancel)
    try:
        assert sidequest.enqueue("tests.EQWorker", 1) is None
    finally:
        middleware.client.remove(cancel)
    assert pushed == []


def test_a_keyword_argument_for_the_job_says_arguments_go_by_position() -> None:
    """enqueue("app.jobs.SendWelcome", 42, template="x") said only "unknown option
    'template'; known options: (...)", as if the job's argument were a misspelt option."""
    with pytest.raises(ConfigError, match=r"unknown option 'template'.*enqueue\(\) passes the"
                                          r" job's arguments by position only"):
        sidequest.enqueue("tests.EQWorker", 42, template="x")
    with pytest.raises(ConfigError) as typo:  # a push option misspelt keeps its own hint
        sidequest.enqueue("tests.EQWorker", 42, retries=3)
    assert "by position" not in str(typo.value)


def test_a_countdown_says_to_use_delay_not_perform_in() -> None:
    # It said "push with perform_in(seconds, ...) instead", which enqueue() has no use for.
    with pytest.raises(ConfigError, match=r"'countdown'; schedule with delay= .* or at="):
        sidequest.enqueue("tests.EQWorker", 42, countdown=5)


@pytest.mark.parametrize("name", ["perform_in", "scheduled_at", "delay_seconds", "eta"])
def test_every_timing_name_says_to_use_delay_or_at(name: str) -> None:
    # perform_in= and the others had no hint, and were taken for the job's own arguments.
    with pytest.raises(ConfigError, match=rf"'{name}'; schedule with delay= .* or at="):
        sidequest.enqueue("tests.EQWorker", 42, **{name: 5})


def test_a_job_argument_beside_a_misspelt_option_says_arguments_go_by_position() -> None:
    # It reported the argument with the list of options, as if it were a misspelt one.
    with pytest.raises(ConfigError, match=r"'user_id'; enqueue\(\) passes the job's arguments"):
        sidequest.enqueue("tests.EQWorker", user_id=5, retries=3)
