"""Where a Manager's processor threads and its fetcher thread meet.

Through C-level structures only (no Python condition variables, which cost more than a Redis
round trip under the GIL): processors append each finished job to a deque that the fetcher
empties on its rounds, and wake the fetcher through a SimpleQueue only when the jobs held for
them run low, so a busy fetcher makes one round trip per batch, not per job.
"""

from __future__ import annotations

import collections
import queue
from typing import Any

#: Signals to the fetcher, compared by identity: STOP asks it to flush what is left and exit;
#: WAKE makes it look again (quiet, isolate); NUDGE says the held jobs ran low.
STOP = b"stop"
WAKE = b"wake"
NUDGE = b"nudge"


class Exchange:
    def __init__(self) -> None:
        # One entry per idle processor (append and popleft are atomic): the payload of the
        # job it finished, to acknowledge, or None (nothing to acknowledge).
        self.done: collections.deque[bytes | None] = collections.deque()
        # One entry per job that ended with no processor asking for work (parked, or an
        # async job that the event loop finished): its payload, or None.
        self.ended: collections.deque[bytes | None] = collections.deque()
        self.signals: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.stop_asked = False
        self.nudged = False  # a nudge is on its way: processors need not send another
        self.dozing = False  # the fetcher sleeps long: the next acknowledgement nudges it

    # -- processor side ------------------------------------------------------------------

    def idle(self, ack: bytes | None, held: Any, low: int) -> None:
        """A processor is free: hand in its last job's acknowledgement (or None), and nudge
        the fetcher when ``held`` (the jobs queue) has ``low`` jobs or fewer, or when it
        dozes with an acknowledgement to send."""
        self.done.append(ack)
        if not self.nudged and (held.qsize() <= low or (ack is not None and self.dozing)):
            self.nudged = True
            self.signals.put(NUDGE)

    def finished(self, ack: bytes | None) -> None:
        """A job ended without a processor asking for the next one (parked, or async); its
        acknowledgement wakes a dozing fetcher, as an idle processor's does."""
        self.ended.append(ack)
        if ack is not None and self.dozing and not self.nudged:
            self.nudged = True
            self.signals.put(NUDGE)

    def signal(self, what: bytes) -> None:
        self.signals.put(what)

    def pending(self) -> bool:
        """Something was handed in since the last collect."""
        return bool(self.done or self.ended)

    # -- fetcher side --------------------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Sleep until a processor or the launcher signals, or ``timeout`` passes."""
        try:
            if self.signals.get(timeout=timeout) is STOP:
                self.stop_asked = True
        except queue.Empty:
            pass

    def collect(self) -> tuple[int, int, list[bytes]]:
        """Take what the processors handed in: (jobs finished, processors newly idle,
        acknowledgements to send)."""
        try:
            while True:
                if self.signals.get_nowait() is STOP:
                    self.stop_asked = True
        except queue.Empty:
            pass
        # After the signals, before the entries: a processor that still saw the flag set
        # handed its entry in before this point, so it is read below; one that sees it clear
        # sends a nudge that stays queued for the next wait. (Cleared before the signals
        # were read, a nudge could be swallowed with the flag left set, and the fetcher
        # would sleep a whole fetch_timeout while processors wait for work.)
        self.nudged = False
        acks: list[bytes] = []
        idle = self._drain(self.done, acks)
        return idle + self._drain(self.ended, acks), idle, acks

    @staticmethod
    def _drain(entries: collections.deque[bytes | None], acks: list[bytes]) -> int:
        count = 0
        while entries:
            entry = entries.popleft()
            count += 1
            if entry:
                acks.append(entry)
        return count
