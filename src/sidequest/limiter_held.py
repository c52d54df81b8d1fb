"""What a job's run leaves for the worker to settle once it ends: the concurrent-limiter slots
held in this context (``hold``, ``forget`` and ``mine``, as ConcurrentLimiter takes, gives
back and checks them; ``take_left`` and ``give_back`` free those a job never released), and
the in-memory mark on the payload of a run that a full limiter sent back
(``mark_rescheduled``, ``rescheduled``, ``unmark``). Apart from limiter.py, which talks to
Redis to take slots: this is per-context and per-payload bookkeeping. The worker still calls
these as ``limiter.<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sidequest import limiter_renewal as renewal

if TYPE_CHECKING:
    from sidequest.limiter import ConcurrentLimiter

log = logging.getLogger("sidequest")

#: The concurrent slots held in this context, innermost last: a thread's, or an asyncio
#: task's. Per thread was wrong once coroutines share the loop's thread: one task's ``async
#: with`` ending gave back the slot another task had taken last. Each with its taker
#: (``_taker``): a context is copied into the tasks and threads started inside a block
#: (``asyncio.run``, ``create_task``, ``to_thread``), which do not hold its slots.
_holding: contextvars.ContextVar[tuple[tuple[ConcurrentLimiter, str, object], ...]] = (
    contextvars.ContextVar("sidequest_limiter_holding", default=()))


#: True while the testing modes run an ``async def perform`` (sidequest.testing_run): a plain
#: ``with`` on a limiter there is refused as on a worker's event loop.
job_loop: contextvars.ContextVar[bool] = contextvars.ContextVar("sidequest_job_loop",
                                                                default=False)


@contextlib.contextmanager
def another_job() -> Iterator[None]:
    """A job run inside another one's context (inline mode runs a pushed job at once, in the
    pushing job's thread or task): it holds none of that job's slots and runs on no loop of
    its own yet, as it would in a worker."""
    holding, loop = _holding.set(()), job_loop.set(False)
    try:
        yield
    finally:
        job_loop.reset(loop)
        _holding.reset(holding)


def on_job_loop() -> bool:
    """Whether this thread runs a job's event loop in the testing modes (not a thread the
    job handed work to, which inherits the flag but runs no loop)."""
    if not job_loop.get():
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _taker() -> object:
    """Who takes a slot now: the running asyncio task, else the thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop runs in this thread
        task = None
    return task if task is not None else threading.current_thread()


def mine(name: str) -> int:
    """How many slots of the limiter named ``name`` this thread or task holds."""
    holding = _holding.get()
    if not holding:  # the common case, without asking asyncio who runs
        return 0
    taker = _taker()
    return sum(1 for held, _, by in holding if held.name == name and by is taker)


def hold(made: ConcurrentLimiter, token: str) -> None:
    """Record a slot of ``made`` taken in this context."""
    _holding.set((*_holding.get(), (made, token, _taker())))


def forget(made: ConcurrentLimiter) -> str | None:
    """Forget this context's innermost slot of ``made``; its token, if any."""
    held = _holding.get()
    for i in range(len(held) - 1, -1, -1):
        if held[i][0] is made:
            _holding.set(held[:i] + held[i + 1:])
            return held[i][1]
    return None


#: Set, in memory only, on the payload of a run whose OverLimit the worker turned into a
#: reschedule: a try that found the limiter full, not a run that did the job, for the
#: worker's log line and the run-time metrics. A key no job writes (as unique.py's mark).
_RESCHEDULED = "\x00sq_overlimit_rescheduled"


def mark_rescheduled(payload: dict[str, Any]) -> None:
    """The worker put this run's job back in the schedule (or buried it) for an OverLimit."""
    payload[_RESCHEDULED] = True


def rescheduled(payload: dict[str, Any]) -> bool:
    """Whether this run ended in an over-limit reschedule (``mark_rescheduled``)."""
    return payload.get(_RESCHEDULED) is True


def take_left() -> tuple[tuple[ConcurrentLimiter, str, object], ...]:
    """The concurrent slots this thread's or task's job still holds once it has ended, taken
    off its record: ones it took with ``acquire()`` and never released (it raised before
    ``release()``). Left there, the next job of the same thread would be refused as holding
    them, and the slots renewed for as long as the process lives."""
    held = _holding.get()
    if held:
        _holding.set(())
    return held


def give_back(held: tuple[tuple[ConcurrentLimiter, str, object], ...]) -> None:
    """Free the slots ``take_left`` returned (Redis I/O: off an event loop)."""
    for made, token, _ in held:
        log.warning("a job ended holding a slot of limiter %r (acquire() without release());"
                    " it is given back", made.name)
        renewal.renewer.drop(made, token)
        made._give_back(token)


def unmark(payload: dict[str, Any]) -> None:
    """Take the mark off a payload about to be written (a run that failed after all)."""
    payload.pop(_RESCHEDULED, None)
