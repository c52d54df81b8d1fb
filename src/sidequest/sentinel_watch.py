"""Following a Sentinel failover at once.

redis-py asks the Sentinels for the primary only when it opens a connection. Pooled
connections go on talking to the old primary after a failover until the Sentinels make it a
replica, about ten seconds later, and all that while it acknowledges pushes that the new
primary never receives: jobs acknowledged and lost. Here one thread per process asks every
half second; when the primary changed, the pool drops its idle connections (redis-py's
``get_master_address`` does), so that the next command goes to the new one, and the change is
logged once: nothing else in a worker's log would show when it switched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from typing import Any

#: Seconds between two questions to the Sentinels.
INTERVAL = 0.5

log = logging.getLogger("sidequest")


class _Watch:
    def __init__(self, pools: list[Any] | None = None) -> None:
        # Weak: a pool its client dropped (a reset, a new URL) is no longer asked for.
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet(pools or [])
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # The primary each service was last seen at (read by this thread alone): a failover
        # is logged once per process, however many of its pools follow that service.
        self._primaries: dict[Any, Any] = {}

    def add(self, pool: Any) -> None:
        """Follow the primary of ``pool`` (a redis-py SentinelConnectionPool)."""
        with self._lock:
            self._pools.add(pool)
        self.running()

    def running(self) -> None:
        """Start the thread if a pool is followed and none runs (in a process forked with
        the parent's clients: a web server's workers); one attribute read otherwise."""
        if self._thread is not None or not self._pools:  # no lock: on every client() call
            return
        with self._lock:
            if self._thread is None and len(self._pools):
                self._thread = threading.Thread(target=self._run, name="sidequest-sentinel",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        stop = threading.Event()  # never set: a daemon thread, ended with its process
        while not stop.wait(INTERVAL):
            self._round()
            with self._lock:
                # Nothing left to follow (the clients were dropped, as a supervisor does
                # before it forks its workers): end, and add() starts it again if needed.
                if not len(self._pools):
                    self._thread = None
                    return

    def _round(self) -> None:
        # A function of its own: its list of pools goes with each round, where a loop's
        # local would keep every pool alive (and asked) for good.
        with self._lock:
            pools = list(self._pools)
        answers: dict[Any, Any] = {}
        for pool in pools:
            # One question per service and set of Sentinels a round, however many clients
            # (a worker has several) follow it: a pool whose primary is the answer already
            # is not asked again. The Sentinels out of reach: the next connection's own
            # question says so.
            with contextlib.suppress(Exception):
                service = _service(pool)
                if service in answers and answers[service] == pool.master_address:
                    continue
                before = getattr(pool, "master_address", None)  # None before its first answer
                answers[service] = pool.get_master_address()
                self._seen(pool, service, before, answers[service])

    def _seen(self, pool: Any, service: Any, before: Any, primary: Any) -> None:
        """Log once that the primary of ``service`` moved. A service not seen yet is compared
        with ``before``, the pool's primary before this round asked it (None at its first
        question: nothing moved)."""
        last = self._primaries.get(service, before)
        # Noted before the log call: a log handler that raises is suppressed in _round, like
        # any failure of one pool, and the move is not said again at every round.
        self._primaries[service] = primary
        if last is None or primary is None or last == primary:
            return
        log.warning("Sentinel: the primary of %s moved from %s to %s; jobs fetched from the old"
                    " primary in the last moments before the switch may run again, and jobs"
                    " pushed to it then may be lost, unless the primaries run with"
                    " min-replicas-to-write", getattr(pool, "service_name", "?"),
                    _address(last), _address(primary))

    def pools(self) -> list[Any]:
        with self._lock:
            return list(self._pools)


def _address(address: Any) -> str:
    """``host:port`` of a (host, port) pair as redis-py gives it."""
    if isinstance(address, tuple) and len(address) == 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _service(pool: Any) -> Any:
    """What identifies the primary ``pool`` follows: its service's name and its Sentinels'
    addresses (a pool of its own when they cannot be read)."""
    try:
        sentinels = frozenset(
            (s.connection_pool.connection_kwargs.get("host"),
             s.connection_pool.connection_kwargs.get("port"))
            for s in pool.sentinel_manager.sentinels)
        return pool.service_name, sentinels
    except AttributeError:
        return id(pool)


watch = _Watch()


def _after_fork() -> None:
    # The child has none of its parent's threads. It keeps the pools its clients inherited
    # (a web server forked after its app made one): followed again from its first command.
    # Read without the lock: a parent thread may have held it at the fork, and the child's
    # copy would then stay locked for good; the child has this one thread.
    global watch
    watch = _Watch(list(watch._pools))


os.register_at_fork(after_in_child=_after_fork)
