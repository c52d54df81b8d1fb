"""The fetcher's ledger (worker/ledger.py): owed jobs, and the buffer doubling when at least
half the threads wait with nothing held for a full refill, after a full one."""

from __future__ import annotations

from sidequest.worker.flow import Flow
from sidequest.worker.ledger import Ledger, Round

ACTIVE = 10


def ledger(prefetch: int = 100) -> Ledger:
    made = Ledger(Flow(ACTIVE, prefetch))
    made.owed += ACTIVE  # every processor idle at the start
    return made


def started() -> Ledger:
    """After a first full fetch: 10 jobs running, 10 held."""
    made = ledger()
    made.fetched(Round(asked=20, got=20, after=0, pending=0), ACTIVE)
    return made


def test_the_first_fetch_owes_every_thread_and_the_buffer_and_never_doubles() -> None:
    made = ledger()
    assert (made.buffer, made.owed, made.low) == (10, 20, 5)
    made.fetched(Round(asked=20, got=20, after=0, pending=0), ACTIVE)
    assert (made.buffer, made.owed) == (10, 0), "every thread idle, but nothing came before"


def fetch(made: Ledger, *, got: int, before: int, after: int, idle: int = 0,
          pending: int = 0) -> None:
    """A fetch that leaves with ``before`` jobs held and ``idle`` processors counted idle
    (so it asks for the buffer's worth less what is held, plus one per idle processor),
    and comes back to ``after`` held and ``pending`` processors newly idle, uncounted."""
    made.owed = made.buffer - before + idle
    made.fetched(Round(made.owed, got, after, pending), ACTIVE)


def test_threads_that_ran_through_the_held_jobs_while_a_full_refill_was_out() -> None:
    made = started()
    fetch(made, got=5, before=5, after=0, pending=12)  # 12 ended: 5 took held jobs, 7 wait
    assert (made.buffer, made.low) == (20, 10), "7 threads wait for the refill: doubled"
    assert made.owed == 10, "the ten more to hold are owed at once"


def test_every_thread_waiting_as_a_full_refill_leaves() -> None:
    made = started()
    fetch(made, got=20, before=0, after=0, idle=10)
    assert made.buffer == 20


def test_no_doubling_unless_half_the_threads_wait_between_full_fetches() -> None:
    made = started()
    fetch(made, got=5, before=5, after=3)  # came back in time
    fetch(made, got=5, before=5, after=0, pending=9)  # 9 ended: 5 took held jobs, 4 wait
    fetch(made, got=11, before=0, after=0, idle=1)  # slow jobs: one waits
    fetch(made, got=3, before=5, after=0, pending=9)  # the queue ran dry
    fetch(made, got=20, before=0, after=0, idle=10)  # after the dry round
    assert made.buffer == 10
    assert made.owed == 0


def test_resize_follows_the_flow_both_ways() -> None:
    made = ledger(prefetch=1000)
    made.flow.buffer = 50
    made.resize()
    assert (made.buffer, made.owed, made.low) == (50, 60, 25)
    made.flow.buffer = 0
    made.resize()
    assert (made.buffer, made.owed, made.low) == (0, 10, 0)


def test_held_jobs_past_an_empty_buffer_are_hoarded_and_given_back() -> None:
    made = ledger()  # 10 threads, a starting buffer of 10
    made.fetched(Round(asked=20, got=12, after=0, pending=0), ACTIVE)  # 10 run, 2 held
    assert made.hoarded == 0  # the starting buffer wants them
    made.flow.buffer = 0  # a window found the jobs slow
    made.resize()
    assert made.hoarded == 2
    made.given_back(2)
    assert (made.hoarded, made.owed) == (0, 0)
    made.flow.buffer = 1  # a buffer that is not empty is reached by running the held jobs
    made.resize()
    made.owed -= 3
    assert made.owed < 0 and made.hoarded == 0
