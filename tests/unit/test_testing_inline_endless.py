"""Inline mode and a job that enqueues itself: each push runs the job at once, so the chain
never ends. It fails with an error naming the job and saying what to do (fake mode gives
EndlessDrainError for the same job), not with a bare RecursionError."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidequest import Job, testing

steps: list[int] = []


class IESelfScheduling(Job):
    def perform(self, n: int) -> None:
        steps.append(n)
        IESelfScheduling.perform_in(60, n + 1)


class IEAsyncSelfScheduling(Job):
    async def perform(self, n: int) -> None:
        steps.append(n)
        IEAsyncSelfScheduling.perform_in(60, n + 1)


class IEChain(Job):
    def perform(self, n: int) -> None:
        steps.append(n)
        if n > 0:
            IEChain.perform_async(n - 1)


@pytest.fixture(autouse=True)
def inline_mode() -> Iterator[None]:
    steps.clear()
    with testing.inline():
        yield
    steps.clear()


@pytest.mark.parametrize("job", [IESelfScheduling, IEAsyncSelfScheduling])
def test_a_job_that_schedules_itself_fails_with_a_clear_error(job: type[Job]) -> None:
    with pytest.raises(testing.EndlessInlineError) as raised:
        job.perform_async(0)  # type: ignore[attr-defined]
    message = str(raised.value)
    assert job.wire_name() in message
    assert f"{testing.MAX_INLINE_DEPTH} levels deep" in message
    assert "testing.fake()" in message and "perform_one()" in message
    assert steps == list(range(testing.MAX_INLINE_DEPTH))


def test_a_chain_that_ends_runs_whole() -> None:
    IEChain.perform_async(testing.MAX_INLINE_DEPTH - 1)
    assert steps == list(range(testing.MAX_INLINE_DEPTH - 1, -1, -1))


def test_the_depth_is_counted_per_chain_not_per_test() -> None:
    for _ in range(3):  # each chain starts again from the top
        IEChain.perform_async(testing.MAX_INLINE_DEPTH - 1)
    assert len(steps) == 3 * testing.MAX_INLINE_DEPTH


def test_it_is_a_sidequest_error() -> None:
    from sidequest.errors import SidequestError

    assert issubclass(testing.EndlessInlineError, SidequestError)
    assert issubclass(testing.EndlessInlineError, RuntimeError)
