"""The jobs a process holds between fetching and running them, in strict priority order.

With strict queues (``-q critical -q default``), a job of a higher queue must never start
after a lower queue's job that was fetched later, as when each thread fetches for itself.
The prefetch buffer would otherwise run what it holds first come, first served, so a
``critical`` job fetched now would wait behind ``default`` jobs fetched a moment ago. Here
each queue keeps its own line, and a processor takes from the highest line that has a job.

Hand-offs stay as cheap as a ``queue.SimpleQueue``: one token per job goes through a
SimpleQueue (which does the blocking), and the jobs wait in one deque per queue rank
(``append``/``popleft`` are atomic under the GIL). Tokens and jobs are equal in number, so
a taker that got a token always finds a job. Sentinels (stop, listen) go through the token
queue themselves.
"""

from __future__ import annotations

import collections
import queue
from typing import Any

from sidequest.worker.fetch import Work

_JOB = object()  # the token that says "a job is waiting in a line"


class PriorityBuffer:
    """A ``SimpleQueue`` of Work (and sentinels) that hands out the highest queue first."""

    def __init__(self, queue_names: list[str], sentinels: tuple[Any, ...] = ()) -> None:
        #: Objects handed out in turn like stop markers, never reordered (the manager's
        #: "wait in Redis" marker is a Work).
        self._sentinels = sentinels
        self._rank = {name: i for i, name in enumerate(queue_names)}
        self._lines: list[collections.deque[Work]] = [collections.deque() for _ in queue_names]
        self._lines.append(collections.deque())  # a queue not in the list (a suspect's)
        self._tokens: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, item: Any) -> None:
        if isinstance(item, Work) and not any(item is s for s in self._sentinels):
            self._lines[self._rank.get(item.queue, len(self._lines) - 1)].append(item)
            self._tokens.put(_JOB)
        else:
            self._tokens.put(item)

    def get(self) -> Any:
        return self._take(self._tokens.get())

    def get_nowait(self) -> Any:
        return self._take(self._tokens.get_nowait())

    def qsize(self) -> int:
        return self._tokens.qsize()

    def take_back(self, count: int) -> list[Work]:
        """Up to ``count`` held jobs, those that would be handed out last (the newest of the
        lowest queue first), returned in hand-out order. Taken from the tail while takers
        may take from the head: no higher queue's job ever leaves while a lower one stays
        to run first. Sentinels met on the way are held again."""
        taken: list[Work] = []
        sentinels = []
        while len(taken) < count:
            try:
                token = self._tokens.get_nowait()
            except queue.Empty:
                break
            if token is not _JOB:
                sentinels.append(token)
                continue
            taken.append(self._pop_last())
        for token in sentinels:
            self._tokens.put(token)
        return taken[::-1]

    def _pop_last(self) -> Work:
        for line in reversed(self._lines):
            try:
                return line.pop()
            except IndexError:  # empty, or a taker's popleft had its last job
                continue
        raise AssertionError("a job token without a job")  # tokens and jobs are equal

    def _take(self, token: Any) -> Any:
        if token is not _JOB:
            return token
        for line in self._lines:
            try:
                return line.popleft()
            except IndexError:
                continue
        raise AssertionError("a job token without a job")  # tokens and jobs are equal


def drain(jobs: Any) -> list[Work]:
    """Take every job still held (a SimpleQueue or a PriorityBuffer) without waiting;
    sentinels other than Work (stop markers) are dropped."""
    return [item for item in _everything(jobs) if isinstance(item, Work)]


def _everything(jobs: Any) -> list[Any]:
    """Every item ``jobs`` holds, sentinels too, taken without waiting."""
    items = []
    try:
        while True:
            items.append(jobs.get_nowait())
    except queue.Empty:
        return items


def take_back(jobs: Any, count: int, keep: Any) -> list[Work]:
    """Take up to ``count`` of the held jobs back out of ``jobs`` (a SimpleQueue or a
    PriorityBuffer), those that would be handed out last, and return them in hand-out order.
    A SimpleQueue (no priority among its jobs) is emptied and the others are held again in
    their order; only the fetcher thread puts jobs in, so none arrive meanwhile. ``keep``
    (the wait-in-Redis marker) is held again, never taken."""
    if isinstance(jobs, PriorityBuffer):
        return jobs.take_back(count)
    held = _everything(jobs)
    works = [item for item in held if isinstance(item, Work) and item is not keep]
    taken = works[max(0, len(works) - count):]
    gone = {id(work) for work in taken}
    for item in held:
        if id(item) not in gone:
            jobs.put(item)
    return taken
