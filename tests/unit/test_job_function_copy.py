"""An @job function is copied and pickled as the function it replaces: by name, the same
object back (copy.copy recursed without end in __getattr__; pickle refused it)."""

from __future__ import annotations

import copy
import pickle

import pytest

from sidequest import job, testing


@job
def copied_job(n: int) -> int:
    return n + 1


def test_copy_and_deepcopy_give_the_same_job_function() -> None:
    assert copy.copy(copied_job) is copied_job
    assert copy.deepcopy({"job": copied_job})["job"] is copied_job


def test_a_job_function_pickles_by_name() -> None:
    assert pickle.loads(pickle.dumps(copied_job)) is copied_job
    assert copied_job.__qualname__ == "copied_job"
    assert copied_job.__module__ == __name__


def test_unknown_dunders_and_missing_attributes_still_raise() -> None:
    with pytest.raises(AttributeError):
        copied_job.__no_such__  # noqa: B018
    with pytest.raises(AttributeError):
        copied_job.no_such_thing  # noqa: B018
    with testing.fake():
        assert copied_job.jobs == []  # a testing helper still found on the class
