"""The fetcher's ledger: how many jobs it may still hand out, kept in step with the flow.

``owed`` is one job per idle processor plus the buffer (the jobs to hold besides the running
ones), less the jobs handed out since; each finished job frees one. The fetcher refills
when something is owed and at most ``low`` jobs are held. Only the fetcher thread writes it;
processors read ``low``.
"""

from __future__ import annotations

from sidequest.worker.flow import Flow


class Ledger:
    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.buffer = flow.buffer
        self.owed = self.buffer
        self.low = self.buffer // 2
        self._refilled = False  # a fetch came back since the start

    def fetched(self, asked: int, got: int, held: int) -> None:
        """A fetch for ``asked`` jobs brought ``got``; ``held`` jobs were left when it came."""
        self.owed -= got
        if self._refilled and asked and got == asked and not held:
            # The threads took every job held before the refill came, and Redis had more:
            # the buffer is too small for the round trip. (The first fetch starts from
            # nothing held, which says nothing about the buffer.)
            self.flow.starved()
            self.resize()
        self._refilled = True

    def resize(self) -> None:
        """Hold as many jobs as the flow now says: the difference is owed (or paid back)."""
        self.owed += self.flow.buffer - self.buffer
        self.buffer = self.flow.buffer
        self.low = self.buffer // 2
