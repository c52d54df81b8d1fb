"""The OS signals a worker process hears, acted on one at a time and in order.

A Python signal handler can be interrupted by the next signal's handler, in the same thread,
at any step: a Ctrl-C to a ``-P`` process group reaches each worker from the terminal and,
within a millisecond, again from its supervisor. Acting inside the handler, the second
handler could run before the first had noted the signal, and both would count as a press:
the "press Ctrl-C again" warning at the first press. So a handler only queues the signal
(with its arrival time, for the echo check); whichever handler is outermost acts on the
queue, and a nested one leaves its signal to it.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

#: Seconds within which a second signal of one kind to a supervised process (-P) is the echo
#: of the first: when a whole process group is signalled (Ctrl-C in a terminal, a service
#: manager's stop), each worker hears it from the OS and again from its supervisor, within
#: milliseconds, or most of a second on a loaded host (the supervisor's forward waits for
#: its main thread). A person pressing Ctrl-C again to force the stop takes longer, or
#: presses a third time.
ECHO = 1.0
#: INT and TERM are one kind: the supervisor forwards a Ctrl-C's INT as TERM.
_KIND = {"INT": "stop", "TERM": "stop"}


class Inbox:
    def __init__(self, act: Callable[[str], None], supervised: bool) -> None:
        self._act = act
        self.supervised = supervised
        self._arrived: collections.deque[tuple[str, float]] = collections.deque()
        self._acting = False
        self._heard: dict[str, float] = {}  # signal kind -> arrival of the last acted on

    def arrive(self, name: str) -> None:
        """Call from the signal handler: act on ``name`` (and on any signal that lands
        meanwhile), unless an outer handler in this thread is acting already."""
        self._arrived.append((name, time.monotonic()))  # atomic: safe at any step
        # The outer loop looks again once _acting is cleared: a signal that lands after the
        # inner loop found the queue empty, but before _acting was cleared, left its entry
        # to this handler, which must not return without it.
        while self._arrived and not self._acting:
            self._acting = True
            try:
                while self._arrived:
                    name, at = self._arrived.popleft()
                    if not self._echo(_KIND.get(name, name), at):
                        self._act(name)
            finally:
                self._acting = False

    def _echo(self, kind: str, at: float) -> bool:
        """True when this signal repeats one heard within ECHO by a supervised process: the
        same signal, from the OS and from the supervisor."""
        if self.supervised and at - self._heard.get(kind, -ECHO) < ECHO:
            return True
        self._heard[kind] = at
        return False
