"""What a batch leaves in Redis and how BatchStatus reads it: every key of a batch expires
with its hash, whether the batch succeeds or not; BatchStatus says whether the batch is
sealed, takes a Batch as well as its id, and refuses anything else."""

from __future__ import annotations

import logging

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Batch, Job, keys
from sidequest.api import BatchStatus
from sidequest.batch import update
from sidequest.batch_members import KEEP, KEEP_AFTER_SUCCESS


class BKRow(Job):
    def perform(self) -> None:
        pass


class BKDoomed(Job):
    retry = False

    def perform(self) -> None:
        raise RuntimeError("always")


def _ttls(r: redis.Redis, bid: str) -> dict[str, int]:
    return {key: int(r.ttl(key)) for key in r.keys(f"{keys.batch(bid)}*")}


def test_every_key_of_a_batch_that_never_succeeds_expires_with_its_hash(
        r: redis.Redis) -> None:
    """A dead job: the batch completes and never succeeds, and nothing else would ever set
    an expiry on its :ran and :failed sets."""
    batch = Batch()
    with batch.jobs():
        BKRow.perform_async()
        BKDoomed.perform_async()
    with running_worker():
        wait_for(lambda: BatchStatus(batch.bid).complete, what="the batch to complete")
    ttls = _ttls(r, batch.bid)
    suffixes = {key.removeprefix(keys.batch(batch.bid)) for key in ttls}
    assert suffixes == {"", ":pending", ":failed"}  # :ran went when the batch completed
    hash_ttl = ttls[keys.batch(batch.bid)]
    assert 0 < hash_ttl <= KEEP
    assert all(hash_ttl - 5 <= ttl <= hash_ttl for ttl in ttls.values()), ttls


def test_a_set_left_without_expiry_gets_its_batchs_at_the_next_outcome(r: redis.Redis) -> None:
    """What an older version left behind is mended as the batch goes on."""
    batch = Batch()
    with batch.jobs():
        first, second = BKRow.perform_async(), BKRow.perform_async()
    assert first and second
    update(batch.ancestry, first, "failure")
    for part in ("ran", "failed"):
        r.persist(keys.batch_part(batch.bid, part))
    update(batch.ancestry, second, "failure")
    assert all(0 < ttl <= KEEP for ttl in _ttls(r, batch.bid).values())


def test_a_batch_that_succeeds_keeps_every_key_as_long_as_its_hash(r: redis.Redis) -> None:
    batch = Batch()
    with batch.jobs():
        jid = BKRow.perform_async()
    assert jid
    update(batch.ancestry, jid, "failure")  # :failed exists until the success
    update(batch.ancestry, jid, "success")
    ttls = _ttls(r, batch.bid)
    assert len(ttls) == 1  # the hash; :ran went at completion, :pending and :failed empty
    assert all(KEEP_AFTER_SUCCESS - 5 <= ttl <= KEEP_AFTER_SUCCESS for ttl in ttls.values())


def test_batch_status_says_whether_the_batch_is_sealed(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """A batch whose block raised shows 0 done and no callback forever; sealed says why."""
    batch = Batch()
    with (caplog.at_level(logging.WARNING, "sidequest"), pytest.raises(RuntimeError),
          batch.jobs()):
        raise RuntimeError("the rows could not be read")
    status = BatchStatus(batch.bid)
    assert status.exists and not status.sealed and not status.complete
    assert "sealed=False" in repr(status)
    with batch.jobs():
        pass
    assert BatchStatus(batch.bid).sealed and BatchStatus(batch.bid).success
    assert not BatchStatus("f" * 24).sealed


def test_batch_status_takes_a_batch_or_its_id_and_refuses_anything_else(
        r: redis.Redis) -> None:
    batch = Batch(description="by object")
    with batch.jobs():
        BKRow.perform_async()
    by_object = BatchStatus(batch)
    assert by_object.exists and by_object.bid == batch.bid
    assert by_object.description == "by object" and by_object.total == 1
    for wrong, name in ((None, "NoneType"), (123, "int"), (batch.bid.encode(), "bytes")):
        with pytest.raises(TypeError, match=f"a batch id \\(str\\) or a Batch, got {name}"):
            BatchStatus(wrong)  # type: ignore[arg-type]
