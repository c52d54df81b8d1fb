"""A batch callback of the wrong shape is refused when the Batch is made, naming the
parameter, what it got and the form it takes, rather than failing with a cryptic error, or
silently, when the batch ends. Accepted forms are checked in fake mode, with no Redis."""

from __future__ import annotations

from typing import Any

import pytest

from sidequest import Batch, Job, job, testing


class CBDone(Job):
    def perform(self, import_id: int) -> None:
        pass


@job
def cb_notify(import_id: int, channel: str = "ops") -> None:
    pass


FORM = r"must be \(JobClass, \[args\]\)"


@pytest.mark.parametrize(("callback", "message"), [
    (CBDone, rf"on_success {FORM}.*got <class '.*CBDone'>"),
    ((CBDone,), rf"on_success {FORM}.*got \(<class"),
    ((CBDone, 42), rf"on_success {FORM}.*its arguments 42 are not a list"),
    ((CBDone, "42"), r"its arguments '42' are not a list"),
    ((CBDone, {"tag": 1}), r"arguments \{'tag': 1\} are not a list \(keyword arguments"),
    ((42, [1]), rf"on_success {FORM}.*42 is not a job"),
    (("", [1]), r"'' is not a job"),
    ((CBDone, [1, 2]), r"on_success: .*CBDone\.perform\(import_id\) cannot take these"),
    ((cb_notify, []), r"on_success: .*cb_notify\.perform\(import_id, channel='ops'\)"),
])
def test_a_bad_on_success_is_refused_at_construction(callback: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Batch(on_success=callback)


def test_the_error_names_on_complete_too() -> None:
    with pytest.raises(TypeError, match=rf"^on_complete {FORM}"):
        Batch(on_complete=CBDone)  # type: ignore[arg-type]


def test_a_parent_given_by_its_bid_is_refused_with_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"parent must be the parent Batch object, got "
                                        r"'0123abcd': pass the Batch itself"):
        Batch(parent="0123abcd")  # type: ignore[arg-type]


@pytest.mark.usefixtures("fake_without_redis")
def test_a_job_class_a_function_or_a_name_are_accepted() -> None:
    with Batch(on_success=(CBDone.wire_name(), (7,)), on_complete=(cb_notify, [7])).jobs():
        pass
    assert [(j["class"], j["args"]) for j in CBDone.jobs] == [(CBDone.wire_name(), [7])]
    assert [j["args"] for j in cb_notify.jobs] == [[7]]


@pytest.mark.usefixtures("fake_without_redis")
def test_a_name_this_process_does_not_know_is_pushed_as_named() -> None:
    """As ``enqueue`` and ``periodic`` do: the job of another process (Ruby's, say)."""
    with Batch(on_success=("HardJob", [1])).jobs():
        pass
    (pushed,) = testing.jobs_for("HardJob")
    assert (pushed["queue"], pushed["args"], pushed["retry"]) == ("default", [1], True)


@pytest.mark.usefixtures("fake_without_redis")
def test_a_misspelt_callback_name_in_a_loaded_module_is_refused() -> None:
    """Periodic entries get the same check; a name in no loaded module (a Ruby class) is
    still taken as another process's job."""
    with pytest.raises(TypeError, match=(
            rf"on_success: the module '{__name__}' is loaded but defines no job 'CBDonne'"
            rf" .*did you mean '{__name__}.CBDone'\?")):
        Batch(on_success=(f"{__name__}.CBDonne", [1]))
    Batch(on_success=("Reports::Done", [1]))
