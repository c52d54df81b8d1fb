"""In the testing modes as on Redis: a job's block on its own batch (``self.batch``) never
seals it, so no callback fires while the block that made the batch is still filling it."""

from __future__ import annotations

from typing import Any

import pytest

from sidequest import Batch, Job, testing

ran: list[tuple[str, Any]] = []


class TORow(Job):
    def perform(self, n: int) -> None:
        ran.append(("row", n))


class TOFanout(Job):
    def perform(self, n: int) -> None:
        batch = self.batch
        assert batch is not None
        with batch.jobs():
            TORow.perform_async(100 + n)


class TODone(Job):
    def perform(self, tag: str) -> None:
        ran.append(("done", tag))


@pytest.fixture(autouse=True)
def no_redis(fake_without_redis: None) -> None:
    ran.clear()


def test_a_job_adding_to_its_batch_does_not_seal_a_batch_still_being_filled() -> None:
    batch = Batch(on_success=(TODone, ["success"]), on_complete=(TODone, ["complete"]))
    with batch.jobs():
        TOFanout.perform_async(1)
        TOFanout.drain()  # its block adds a row to the batch
        TORow.drain()
        assert TODone.jobs == [], "fired while the batch's own block still pushed"
        TORow.perform_async(2)
    TORow.drain()
    assert sorted(job["args"][0] for job in TODone.jobs) == ["complete", "success"]
    testing.drain_all()
    assert sorted(ran) == [("done", "complete"), ("done", "success"), ("row", 2),
                           ("row", 101)]
