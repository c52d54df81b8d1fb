"""Renewing the concurrent-limiter slots this process holds: a live holder never loses one
to its lock timeout, and a process that dies loses them after it (limiter.py). One daemon
thread per process, started at the first slot taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("sidequest")


class Renewable(Protocol):
    """A concurrent limiter, as the renewer sees it."""

    name: str
    _interval_ms: int

    def renew(self, tokens: list[str], mode: str = "renew") -> list[str]: ...

    def _give_back(self, token: str) -> None: ...


class Renewer:
    """Extends the concurrent slots this process holds, so that a live holder never loses
    one; a daemon thread started at the first slot taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Renewable, list[str]] = {}
        self._thread: threading.Thread | None = None
        # Set when a slot arrives whose lock timeout is shorter than the current nap allows:
        # the thread wakes at once rather than let that slot lapse while it sleeps.
        self._wake = threading.Event()
        self._period = float("inf")

    def hold(self, limiter: Renewable, token: str) -> None:
        with self._lock:
            self._held.setdefault(limiter, []).append(token)
            if limiter._interval_ms / 3000 < self._period:
                self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sidequest-limiters",
                                                daemon=True)
                self._thread.start()

    def drop(self, limiter: Renewable, token: str) -> None:
        with self._lock:
            tokens = self._held.get(limiter, [])
            if token in tokens:
                tokens.remove(token)
            if not tokens:
                self._held.pop(limiter, None)

    def give_back_all(self) -> int:
        """Free every slot still held (a stop pushed back the jobs holding them, and the
        process exits): the jobs' next run elsewhere must not wait out the lock timeout for
        slots no job uses. A Redis error leaves a slot to its expiry. Returns how many."""
        with self._lock:
            held, self._held = self._held, {}
        for lim, tokens in held.items():
            for token in tokens:
                quietly(lambda lim=lim, token=token: lim._give_back(token))  # type: ignore[misc]
        return sum(len(tokens) for tokens in held.values())

    def _run(self) -> None:
        while True:
            try:
                self._round()
            except Exception:  # ended, the thread would leave every slot here to lapse
                log.exception("limiter renewal failed; trying again")
                self._period = min(self._period, 1.0)
            self._wake.wait(self._period)

    def _round(self) -> None:
        """Renew every slot held; write back those that lapsed."""
        with self._lock:
            held = {lim: list(tokens) for lim, tokens in self._held.items()}
            shortest = min((lim._interval_ms for lim in held), default=3000) / 1000
            self._period = max(shortest / 3, 0.05)
            self._wake.clear()
        for lim, tokens in held.items():
            lapsed = quietly(lambda lim=lim, tokens=tokens: lim.renew(tokens))  # type: ignore[misc]
            if lapsed:
                self._reclaim(lim, lapsed)

    def _reclaim(self, limiter: Renewable, lapsed: list[str]) -> None:
        """Write back the slots that lapsed while their jobs still run (Redis was away for
        longer than the lock timeout, and an acquire dropped them): left out, the limiter
        would go on admitting jobs beside them. The Redis call is made outside the lock,
        which acquires and releases (async jobs' too, on the event loop) take; a slot given
        back meanwhile is then given back again, since the write may have come after."""
        with self._lock:
            still = [t for t in lapsed if t in self._held.get(limiter, [])]
        if not still or quietly(lambda: limiter.renew(still, "reclaim")) is None:
            return  # nothing left to write back, or Redis failed again: the next round tries
        with self._lock:
            released = [t for t in still if t not in self._held.get(limiter, [])]
        for token in released:
            quietly(lambda token=token: limiter._give_back(token))  # type: ignore[misc]
        log.warning("limiter %r: %d slot(s) of this process lapsed while Redis could not be"
                    " reached for longer than the lock timeout, and may have been taken by"
                    " other jobs; they are counted again, so the limiter holds more than its"
                    " limit until enough jobs leave it", limiter.name, len(still))


def quietly(call: Callable[[], Any]) -> Any:
    """``call()``, or None if it failed. Redis down: the slot's own expiry is the fallback;
    the next renewal tries again."""
    with contextlib.suppress(Exception):
        return call()
    return None


renewer = Renewer()

#: The worker process whose slots this process's tokens are (its identity; "" outside a
#: worker): a token names it, so that the slots of a process known dead can be freed at once
#: (sidequest.worker.limiter_slots) rather than lapse at their lock timeout.
owner = ""


def token_owner(token: str) -> str:
    """The process a slot's token names ("" for one taken outside a worker)."""
    named, bar, _ = token.rpartition("|")
    return named if bar else ""


def _after_fork() -> None:
    # A forked child (``sidequest -P``) has none of its parent's threads: it starts its own
    # renewing thread at its first slot, and holds none of its parent's slots.
    global renewer, owner
    renewer = Renewer()
    owner = ""  # until the child's worker names itself


os.register_at_fork(after_in_child=_after_fork)
