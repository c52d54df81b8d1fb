"""Whether an ``async def`` job itself held the event loop past its time limit.

A time limit on the loop is a timer, which cannot run while a step of some job's code holds
the loop's thread (a blocking call inside ``async def``). A job that blocks past its limit
and then returns would so end as a success; but a job that merely waited while another one
blocked, and resumed after its own limit, did nothing wrong. ``stepped`` runs the job's
coroutine one step at a time and notes a step of its own that began before the deadline and
ended after it: only that job has overrun.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Awaitable, Generator
from typing import Any


class Overrun:
    """Set by ``stepped`` when one of the job's own steps ran across ``deadline`` (loop
    time)."""

    __slots__ = ("deadline", "happened")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.happened = False


@types.coroutine
def stepped(awaitable: Awaitable[Any], overrun: Overrun) -> Generator[Any, Any, Any]:
    """Await ``awaitable`` as ``await`` would (what it yields goes to the task, what the task
    sends or throws comes back to it), timing each of its steps."""
    loop = asyncio.get_running_loop()
    steps = awaitable.__await__()
    value: Any = None
    error: BaseException | None = None
    while True:
        started = loop.time()
        try:
            yielded = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        finally:
            if started < overrun.deadline <= loop.time():
                overrun.happened = True
        try:
            value, error = (yield yielded), None
        except GeneratorExit:
            close = getattr(steps, "close", None)
            if close is not None:
                close()
            raise
        except BaseException as exc:  # a cancellation, or whatever the task throws in
            # Thrown in here, it carries this frame's yield as its first entry; passed on
            # with it, the backtrace would name Sidequest's line before the job's await.
            tb = exc.__traceback__
            if tb is not None and tb.tb_frame is sys._getframe():
                exc.__traceback__ = tb.tb_next
            value, error = None, exc
