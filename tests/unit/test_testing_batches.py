"""Batches in the testing modes, with no Redis: members and callbacks are kept in this
process, a batch's callbacks land in the fake queues when its jobs are drained (at the end
of the block for an empty batch), and run at once inline; JobStatus says why it cannot
answer instead of failing to connect."""

from __future__ import annotations

from typing import Any

import pytest

from sidequest import Batch, Job, testing
from sidequest import batch as batch_module
from sidequest.api import JobStatus, cancel

ran: list[tuple[str, Any]] = []


class TBRow(Job):
    def perform(self, n: int) -> None:
        ran.append(("row", n))
        if n < 0:
            raise ValueError(f"row {n}")


class TBFanout(Job):
    def perform(self, n: int) -> None:
        ran.append(("fanout", n))
        batch = self.batch
        assert batch is not None
        with batch.jobs():
            TBRow.perform_async(100 + n)


class TBPushesOne(Job):
    """Pushes a job outside any batch block of its own: a worker would not make it a member."""

    def perform(self, n: int) -> None:
        ran.append(("pusher", n))
        TBRow.perform_async(200 + n)


class TBDone(Job):
    def perform(self, tag: str) -> None:
        ran.append(("success", tag))


class TBReport(Job):
    def perform(self, tag: str) -> None:
        ran.append(("complete", tag))


@pytest.fixture(autouse=True)
def no_redis(fake_without_redis: None) -> None:
    """Every test in fake mode with no Redis to reach (conftest.py)."""
    ran.clear()


def _batch(tag: str, **extra: Any) -> Batch:
    return Batch(description=tag, on_success=(TBDone, [tag]), on_complete=(TBReport, [tag]),
                 **extra)


def test_callbacks_land_in_the_fake_queues_when_the_jobs_are_drained() -> None:
    batch = _batch("import")
    with batch.jobs():
        TBRow.perform_bulk([[1], [2]])
    assert TBDone.jobs == [] and TBReport.jobs == [], "not before its jobs ran"
    TBRow.perform_one()
    assert TBDone.jobs == []
    TBRow.drain()
    assert [job["args"] for job in TBReport.jobs] == [["import"]]
    assert [job["args"] for job in TBDone.jobs] == [["import"]]
    assert TBDone.jobs[0]["sq_batch_callback"] == batch.bid
    testing.drain_all()
    assert ran[-2:] == [("complete", "import"), ("success", "import")]


def test_an_empty_batch_fires_at_the_end_of_its_block() -> None:
    with _batch("empty").jobs():
        assert TBDone.jobs == []
    assert len(TBDone.jobs) == 1 and len(TBReport.jobs) == 1


def test_a_failed_job_fires_on_complete_only() -> None:
    with _batch("partly").jobs():
        TBRow.perform_bulk([[1], [-1]])
    with pytest.raises(ValueError, match="row -1"):
        TBRow.drain()
    assert len(TBReport.jobs) == 1 and TBDone.jobs == []


def test_jobs_add_jobs_and_a_child_fires_before_its_parent() -> None:
    parent = _batch("parent")
    child = _batch("child", parent=parent)
    with child.jobs():
        TBFanout.perform_async(1)  # adds a TBRow to the child while it is drained
    with parent.jobs():
        TBRow.perform_async(2)
    testing.drain_all()
    assert [tag for kind, tag in ran if kind == "success"] == ["child", "parent"]
    assert ("row", 101) in ran


def _parent_with_a_child_of_one_row() -> Batch:
    """A parent whose one member is a child batch holding one TBRow; both sealed."""
    parent = _batch("parent")
    child = _batch("child", parent=parent)
    with child.jobs():
        TBRow.perform_async(1)
    with parent.jobs():
        pass
    return parent


def test_a_childs_callbacks_are_jobs_of_the_parent() -> None:
    parent = _parent_with_a_child_of_one_row()
    TBRow.drain()
    assert [job["args"] for job in TBDone.jobs] == [["child"]], "the parent waits for it"
    assert TBDone.jobs[0]["sq_batch"] == [parent.bid]
    TBReport.drain()
    assert TBDone.jobs[-1]["args"] == ["child"], "the child's on_success still pending"
    testing.drain_all()
    assert [call for call in ran if call[0] != "row"] == [
        ("complete", "child"), ("success", "child"), ("complete", "parent"),
        ("success", "parent")]


def test_inline_a_childs_callbacks_run_before_the_parents() -> None:
    with testing.inline():
        _parent_with_a_child_of_one_row()
    assert ran == [("row", 1), ("complete", "child"), ("success", "child"),
                   ("complete", "parent"), ("success", "parent")]


def test_a_callback_only_another_process_defines_is_not_a_job_of_the_parent() -> None:
    parent = _batch("parent")
    child = Batch(parent=parent, on_success=("Ruby::ImportDone", []))
    with child.jobs():
        TBRow.perform_async(1)
    with parent.jobs():
        pass
    TBRow.drain()
    ruby = testing.jobs_for("Ruby::ImportDone")
    assert len(ruby) == 1 and "sq_batch" not in ruby[0]
    assert [job["args"] for job in TBDone.jobs] == [["parent"]], "no wait for the Ruby job"


def test_inline_runs_the_callbacks_when_the_block_ends() -> None:
    with testing.inline():
        with _batch("inline").jobs():
            TBRow.perform_async(1)
            assert ran == [("row", 1)]
        assert ran == [("row", 1), ("complete", "inline"), ("success", "inline")]


def test_job_status_says_it_cannot_answer_in_the_testing_modes() -> None:
    with pytest.raises(RuntimeError, match=r"testing.fake\(\) and testing.inline\(\)"):
        JobStatus("0123456789abcdef01234567")


def test_inline_a_job_pushed_by_a_member_is_not_a_member() -> None:
    """Run inline inside the block, the member would otherwise push into the block's batch:
    a worker runs it later, outside any block."""
    with testing.inline():
        batch = _batch("inline-pusher")
        with batch.jobs():
            TBPushesOne.perform_async(1)
        assert ("row", 201) in ran
        assert ran[-2:] == [("complete", "inline-pusher"), ("success", "inline-pusher")]
        assert batch_module._local is not None
        assert batch_module._local._batches[batch.bid].total == 1


def test_cancel_takes_a_queued_job_out_and_its_batch_counts_it_done() -> None:
    """cancel() went to Redis in the testing modes (a ConnectionError in a CI without one)
    and left the job queued, to run at the next drain."""
    batch = _batch("cancelled")
    with batch.jobs():
        keep, drop = TBRow.perform_bulk([[1], [2]])
    assert cancel(drop) is True
    assert [job["jid"] for job in TBRow.jobs] == [keep]
    assert cancel(drop) is False  # not queued any more
    testing.drain_all()
    assert ("row", 2) not in ran and ("success", "cancelled") in ran
    with testing.inline():
        jid = TBRow.perform_async(3)
        assert cancel(jid) is False  # it ran already
