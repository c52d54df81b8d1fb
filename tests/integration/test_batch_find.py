"""Batch.find: a batch whose filling process died inside its block is finished from
another process by its bid alone. Real Redis, an in-process worker."""

from __future__ import annotations

import threading

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Batch, Job, keys, testing
from sidequest.api import BatchStatus

lock = threading.Lock()
calls: list[str] = []
ran: list[int] = []


class BFRow(Job):
    def perform(self, row: int) -> None:
        with lock:
            ran.append(row)


class BFDone(Job):
    def perform(self, name: str) -> None:
        with lock:
            calls.append(name)


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    calls.clear()
    ran.clear()


def _half_filled(parent: Batch | None = None) -> str:
    """A batch whose block raised after its first rows, as a producer that died would leave
    it (unsealed, no callbacks); only its bid is kept."""
    batch = Batch(description="import 7", parent=parent,
                  on_success=(BFDone, ["success"]), on_complete=(BFDone, ["complete"]))
    with pytest.raises(RuntimeError), batch.jobs():
        BFRow.perform_async(1)
        raise RuntimeError("the producer died here")
    return batch.bid


def test_a_batch_found_by_its_bid_is_filled_and_sealed(r: redis.Redis) -> None:
    bid = _half_filled()
    found = Batch.find(bid)
    assert (found.bid, found.ancestry, found.description) == (bid, [bid], "import 7")
    with running_worker():
        wait_for(lambda: ran == [1] and BatchStatus(bid).pending == 0, what="the first row")
        assert not BatchStatus(bid).sealed and calls == []
        with found.jobs():
            BFRow.perform_async(2)
        wait_for(lambda: sorted(calls) == ["complete", "success"], what="both callbacks")
    assert sorted(ran) == [1, 2]
    status = BatchStatus(bid)
    assert status.sealed and status.total == 2 and status.pending == 0


def test_a_found_child_batch_still_holds_its_parent(r: redis.Redis) -> None:
    parent = Batch(on_success=(BFDone, ["parent"]))
    with parent.jobs():
        bid = _half_filled(parent)
    found = Batch.find(bid)
    assert found.ancestry == [bid, parent.bid]
    with running_worker():
        with found.jobs():
            BFRow.perform_async(2)
        wait_for(lambda: "parent" in calls, what="the parent's callback")
    assert sorted(calls) == ["complete", "parent", "success"]


def test_an_unknown_or_expired_batch_is_not_found(r: redis.Redis) -> None:
    with pytest.raises(LookupError, match="no batch 'nope' on shard 'default': never made,"
                                          " or expired"):
        Batch.find("nope")
    bid = _half_filled()
    r.delete(keys.batch(bid))  # as its expiry does
    with pytest.raises(LookupError, match=bid):
        Batch.find(bid)
    with pytest.raises(TypeError, match=r"the batch's bid \(a string, batch.bid\)"):
        Batch.find(Batch())  # type: ignore[arg-type]


def test_a_batch_is_found_in_the_testing_modes() -> None:
    with testing.fake():
        bid = _half_filled()
        found = Batch.find(bid)
        assert (found.ancestry, found.description) == ([bid], "import 7")
        with found.jobs():
            BFRow.perform_async(2)
        testing.drain_all()
        assert sorted(ran) == [1, 2] and sorted(calls) == ["complete", "success"]
        with pytest.raises(LookupError):
            Batch.find("nope")


def test_a_found_batch_that_has_ended_says_no_callback_fires_again(
        caplog: pytest.LogCaptureFixture) -> None:
    """Jobs added to it ran and counted, and nothing said that its callbacks were long past."""
    bid = _half_filled()
    with running_worker():
        with Batch.find(bid).jobs():
            BFRow.perform_async(2)
        wait_for(lambda: sorted(calls) == ["complete", "success"], what="both callbacks")
    with caplog.at_level("WARNING", "sidequest"):
        Batch.find(bid)
    said = [rec.getMessage() for rec in caplog.records if "fired already" in rec.getMessage()]
    assert said and bid in said[0] and "on_complete and on_success fired" in said[0], said
    assert "make a new Batch" in said[0]


def test_a_found_batch_sealed_already_says_a_block_holds_nothing_back(
        caplog: pytest.LogCaptureFixture) -> None:
    """Its callbacks fired in the middle of a block on it, before the jobs the block added,
    and nothing had said that only a job of the batch holds a running batch open."""
    batch = Batch(on_complete=(BFDone, ["complete"]))
    with batch.jobs():
        BFRow.perform_async(1)  # sealed, and running (no worker yet)
    with caplog.at_level("WARNING", "sidequest"):
        Batch.find(batch.bid)
    said = [rec.getMessage() for rec in caplog.records if "sealed already" in rec.getMessage()]
    assert said and batch.bid in said[0] and "from one of its jobs (self.batch)" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", "sidequest"):
        Batch.find(_half_filled())  # left unsealed: a block on it is what finishes it
    assert not [rec for rec in caplog.records if "sealed already" in rec.getMessage()]


def test_a_child_made_after_its_parent_succeeded_stands_alone(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """It joined the parent: the parent said succeeded, with a member pending for good."""
    parent = Batch(on_success=(BFDone, ["parent"]))
    with running_worker():
        with parent.jobs():
            BFRow.perform_async(1)
        wait_for(lambda: calls == ["parent"], what="the parent's on_success")
        with caplog.at_level("WARNING", "sidequest"):
            child = Batch(parent=parent, on_success=(BFDone, ["child"]))
        with child.jobs():
            BFRow.perform_async(2)
        wait_for(lambda: sorted(calls) == ["child", "parent"], what="the child's on_success")
    assert any("stands alone" in rec.getMessage() and parent.bid in rec.getMessage()
               for rec in caplog.records)
    status = BatchStatus(parent.bid)
    assert status.total == 1 and status.pending == 0 and status.success
    assert child.ancestry == [child.bid]


class FindsItsOwnBatch(Job):
    def perform(self) -> None:
        assert self.batch is not None
        with Batch.find(self.batch.bid).jobs():
            BFRow.perform_async(9)


def test_a_member_job_finding_its_own_batch_is_not_warned(
        caplog: pytest.LogCaptureFixture) -> None:
    # It is pending in the batch, so it holds it open: the warning said nothing did.
    batch = Batch(on_complete=(BFDone, ["complete"]))
    with batch.jobs():
        FindsItsOwnBatch.perform_async()
    with caplog.at_level("WARNING", "sidequest"), running_worker():
        wait_for(lambda: calls == ["complete"] and 9 in ran, what="the batch to complete")
    assert not [rec for rec in caplog.records if "sealed already" in rec.getMessage()]
