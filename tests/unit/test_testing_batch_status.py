"""``BatchStatus`` in the testing modes says why it cannot answer, as ``JobStatus`` does,
instead of reading a Redis they never write (exists=False, or ShardUnreachable)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sidequest import Batch, Job, testing
from sidequest.api import BatchStatus


class TBSDone(Job):
    def perform(self) -> None:
        pass


@pytest.mark.usefixtures("fake_without_redis")
@pytest.mark.parametrize("mode", [testing.fake, testing.inline])
def test_batch_status_says_what_to_check_instead(mode: Callable[[], testing.Switch]) -> None:
    with mode():
        batch = Batch(on_success=(TBSDone, []))
        with batch.jobs():
            pass
        for read in (batch, batch.bid):
            with pytest.raises(RuntimeError, match=r"testing.fake\(\) and testing.inline\(\)"
                                                   r".*by its callbacks"):
                BatchStatus(read)
