"""The fetcher's ledger: how many jobs it may still hand out, kept in step with the flow.

``owed`` is one job per idle processor plus the buffer (the jobs to hold besides the running
ones), less the jobs handed out since: each processor that goes idle frees one (a parked
thread or an async job frees none). The fetcher refills
when something is owed and at most ``low`` jobs are held. Only the fetcher thread writes it;
processors read ``low``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidequest.worker.flow import Flow


@dataclass(frozen=True)
class Round:
    """One fetch round trip, as the fetcher saw it."""

    asked: int  # jobs it asked for
    got: int  # jobs it brought
    after: int  # jobs held when it came back (before its own were added)
    pending: int  # processors that went idle since the last collect (not yet counted)


class Ledger:
    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.buffer = flow.buffer
        self.owed = self.buffer
        self.low = self.buffer // 2
        self._full = False  # the last fetch brought every job it asked for

    def fetched(self, fetch: Round, active: int) -> None:
        """Count a fetch's jobs; double the buffer if at least half the ``active``
        processors are waiting for them while Redis still had jobs."""
        full = fetch.asked > 0 and fetch.got == fetch.asked
        # owed - buffer + held counts the idle processors the fetcher has collected.
        waiting = self.owed - self.buffer + fetch.after + fetch.pending
        # Only between two full fetches: after nothing (the first, or one after a wait in
        # Redis) every thread is idle, which says nothing of the buffer. One thread of many
        # waiting is slow jobs ending by chance, not a buffer too small.
        if full and self._full and not fetch.after and 2 * waiting >= active:
            self.flow.starved()
            self.resize()
        self._full = full
        self.owed -= fetch.got

    def resize(self) -> None:
        """Hold as many jobs as the flow now says: the difference is owed (or paid back)."""
        self.owed += self.flow.buffer - self.buffer
        self.buffer = self.flow.buffer
        self.low = self.buffer // 2

    @property
    def hoarded(self) -> int:
        """Held jobs past what the flow wants held, when it wants none (slow jobs fetched by
        the starting buffer before a window measured them): to give back for idle processes.
        A smaller buffer that is not empty is reached by running the jobs held."""
        return -self.owed if self.buffer == 0 and self.owed < 0 else 0

    def given_back(self, count: int) -> None:
        self.owed += count
