"""A job outside a worker: an @job function copies and pickles by name as the function it
replaces (copy.copy recursed in __getattr__; pickle refused it), and perform() called directly."""

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


def test_perform_called_directly_has_no_batch_and_records_no_progress() -> None:
    """``Export().perform(7)`` in a plain unit test, as Sidekiq's ``MyJob.new.perform``:
    before, self.batch and set_progress failed for want of a payload."""
    from sidequest import Job

    class DirectExport(Job):
        store_result = True

        def perform(self, n: int) -> int:
            assert self.batch is None
            self.set_progress(0.5, "half way")
            return n * 2

    assert DirectExport().perform(7) == 14
