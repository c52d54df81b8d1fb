"""The fetcher's ledger (worker/ledger.py): owed jobs, and the buffer doubling when the
threads run out of held jobs before a full refill comes back."""

from __future__ import annotations

from sidequest.worker.flow import Flow
from sidequest.worker.ledger import Ledger


def ledger(prefetch: int = 100) -> Ledger:
    made = Ledger(Flow(10, prefetch))
    made.owed += 10  # ten idle processors at the start
    return made


def test_the_first_fetch_owes_every_thread_and_the_buffer_and_never_doubles() -> None:
    made = ledger()
    assert (made.buffer, made.owed, made.low) == (10, 20, 5)
    made.fetched(asked=20, got=20, held=0)  # nothing was held before the first fetch
    assert (made.buffer, made.owed) == (10, 0)


def test_a_full_refill_that_finds_nothing_held_doubles_the_buffer() -> None:
    made = ledger()
    made.fetched(asked=20, got=20, held=0)
    made.owed += 15  # fifteen jobs finished while the refill was out
    made.fetched(asked=15, got=15, held=0)
    assert (made.buffer, made.low) == (20, 10)
    assert made.owed == 10, "the ten more to hold are owed at once"


def test_no_doubling_while_jobs_are_held_or_redis_ran_short() -> None:
    made = ledger()
    made.fetched(asked=20, got=20, held=0)
    made.owed += 8
    made.fetched(asked=8, got=8, held=3)  # the refill came in time
    made.owed += 8
    made.fetched(asked=8, got=5, held=0)  # the queue ran dry: no bigger buffer helps
    made.fetched(asked=0, got=0, held=0)  # acknowledgements only
    assert made.buffer == 10
    assert made.owed == 3


def test_resize_follows_the_flow_both_ways() -> None:
    made = ledger(prefetch=1000)
    made.flow.buffer = 50
    made.resize()
    assert (made.buffer, made.owed, made.low) == (50, 60, 25)
    made.flow.buffer = 0
    made.resize()
    assert (made.buffer, made.owed, made.low) == (0, 10, 0)
