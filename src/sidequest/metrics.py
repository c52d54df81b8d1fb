"""Execution metrics per job class: a server middleware that counts runs, failures and
execution time per UTC minute and per 10 minutes, for the dashboard's Metrics page.

    from sidequest import metrics, middleware
    middleware.server.prepend(metrics.recorder)   # outermost: times the whole chain

Counting happens in memory; a background thread adds the counts to Redis every few seconds in
one pipeline (HINCRBY per field, EXPIRE per key), so a job costs a dict update, not a round
trip. Keys are described in :mod:`sidequest.keys` (``sq:metrics:*``); they are our own, not
Sidekiq's metrics keys, whose format changed between Sidekiq 7 and 8. The reader is
:mod:`sidequest.api.metrics`.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from typing import Any

import redis

from sidequest import connection, keys
from sidequest.limiter import rescheduled
from sidequest.payload import DROPPED, job_class

log = logging.getLogger("sidequest")

#: Upper bounds, in ms, of the execution-time histogram's buckets (Sidekiq's); a run goes
#: into the first bucket whose bound is greater than its duration, the last bucket is open.
BOUNDS_MS = (20, 30, 45, 65, 100, 150, 225, 335, 500, 750, 1100, 1700, 2500, 3800, 5750, 8500,
             13000, 20000, 30000, 45000, 65000, 100000, 150000, 225000, 335000)
BUCKETS = len(BOUNDS_MS) + 1
MINUTE_TTL = 8 * 3600
TEN_MINUTE_TTL = 3 * 24 * 3600
FLUSH_INTERVAL = 5.0
#: Counts kept when Redis is unreachable; past this many fields new counts are dropped, so
#: an outage cannot grow the worker's memory without bound.
MAX_PENDING = 100_000


def bucket(ms: float) -> int:
    """The histogram bucket of a run that took ``ms`` milliseconds."""
    return bisect.bisect_right(BOUNDS_MS, ms)


def minute_stamp(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y%m%d%H%M")


class Timing:
    """A server middleware that times the rest of the chain and hands each run to
    ``observe(payload, queue, seconds, failed)``; sync and async (``acall``) forms."""

    def observe(self, payload: dict[str, Any], queue: str, seconds: float,
                failed: bool) -> None:
        raise NotImplementedError

    def __call__(self, job: Any, payload: dict[str, Any], queue: str,
                 call_next: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            result = call_next()
        except BaseException:
            if not _given_up or payload.get("jid") not in _given_up:
                self.observe(payload, queue, time.perf_counter() - started, True)
            raise
        if not _given_up or payload.get("jid") not in _given_up:
            self.observe(payload, queue, time.perf_counter() - started, False)
        return result

    async def acall(self, job: Any, payload: dict[str, Any], queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        """The same around an ``async def perform`` job, on the event loop."""
        started = time.perf_counter()
        try:
            result = await call_next()
        except asyncio.CancelledError:
            # Cancelled by sidequest.api.cancel, the job stopped for good, as a thread job that
            # saw cancelled() and returned: a run, not a failure. Cancelled by a stop, it goes
            # back to its queue to run again: like a thread job still running then, uncounted.
            if cancelled(job):
                self.observe(payload, queue, time.perf_counter() - started, False)
            raise
        except BaseException:
            if not _given_up or payload.get("jid") not in _given_up:
                self.observe(payload, queue, time.perf_counter() - started, True)
            raise
        if not _given_up or payload.get("jid") not in _given_up:
            self.observe(payload, queue, time.perf_counter() - started, False)
        return result


#: Jids of thread jobs given up on as stuck (worker/stuck.py), counted then as failed runs;
#: should the call one is stuck in return, the chain's timing of it counts nothing more. A
#: process retires after such a job, so the set stays small.
_given_up: set[Any] = set()


def given_up(payload: dict[str, Any], queue: str, chain: Iterable[Any],
             error: BaseException) -> None:
    """Count a job given up on as stuck, once, as a failed run in every timer of ``chain``
    (the server middleware: the metrics recorder, and a Prometheus exporter if serving),
    and tell each other middleware that has a ``given_up(payload, queue, error)`` method
    (the OpenTelemetry one ends the run's span): the run's own end may never come."""
    _given_up.add(payload.get("jid"))
    for entry in chain:
        if isinstance(entry, Timing):
            entry.observe(payload, queue, 0.0, True)
        elif callable(told := getattr(entry, "given_up", None)):
            try:
                told(payload, queue, error)
            except Exception:  # an application's middleware: the failure is recorded anyway
                log.exception("the middleware %r raised in given_up", entry)


def cancelled(job: Any) -> bool:
    """``job.cancelled()``, the Job's own question (sidequest.api.cancel was called on it),
    so that this module, which the dashboard imports too, needs nothing of the worker's."""
    asked = getattr(job, "cancelled", None)
    return callable(asked) and bool(asked())


class Recorder(Timing):
    """The middleware: ``recorder(job, payload, queue, call_next)``. Thread-safe."""

    def __init__(self, interval: float = FLUSH_INTERVAL,
                 clock: Callable[[], float] = time.time) -> None:
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        #: Per (minute, class): runs, failures, milliseconds (a float: whole milliseconds per
        #: run made sub-millisecond jobs read 0), then the histogram's buckets.
        self._runs: dict[tuple[int, str], list[float]] = {}
        self._pending: dict[tuple[str, str], int] = {}
        self._ttls: dict[str, int] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, payload: dict[str, Any], queue: str, seconds: float,
                failed: bool) -> None:
        if rescheduled(payload) or DROPPED in payload:
            # A try that found a rate limiter full (the worker rescheduled it), or a job
            # dropped unrun (expired, cancelled): not a run, nor a few ms of success in the
            # class's times. Counted as over limit, or expired, by the worker.
            return
        self.record(job_class(payload), 0.0 if failed else seconds * 1000.0, failed)

    def record(self, klass: str, ms: float, failed: bool) -> None:
        """Count one run. As in Sidekiq, a failure counts as run and failed, with no time.

        Only a tally per (minute, class) is kept here; key names and fields are built at
        flush time, so that a job pays a dict lookup and a few additions."""
        slot_key = (int(self.clock() // 60), klass)
        with self._lock:
            tally = self._runs.get(slot_key)
            if tally is None:
                if len(self._runs) >= MAX_PENDING:
                    return
                tally = self._runs[slot_key] = [0, 0, 0.0] + [0] * BUCKETS
            tally[0] += 1
            if failed:
                tally[1] += 1
            else:
                tally[2] += ms
                tally[3 + bucket(ms)] += 1
            if self._thread is None:
                self._start()

    def _expand(self) -> None:
        """Turn the tallies into Redis hash fields (caller holds the lock)."""
        for (minute_index, klass), tally in self._runs.items():
            stamp = minute_stamp(minute_index * 60.0)
            minute, ten = keys.metrics_minute(stamp), keys.metrics_ten_minutes(stamp[:-1])
            runs, fails, total_ms = int(tally[0]), int(tally[1]), round(tally[2])
            for key in (minute, ten):
                self._add(key, f"{klass}|p", runs)
                if fails:
                    self._add(key, f"{klass}|f", fails)
                if runs > fails:
                    self._add(key, f"{klass}|ms", total_ms)
            self._ttls.setdefault(minute, MINUTE_TTL)
            self._ttls.setdefault(ten, TEN_MINUTE_TTL)
            if runs > fails:
                hist = keys.metrics_histogram(stamp[:-1])
                for index, count in enumerate(tally[3:]):
                    if count:
                        self._add(hist, f"{klass}|{index}", int(count))
                self._ttls.setdefault(hist, TEN_MINUTE_TTL)
        self._runs.clear()

    def _add(self, key: str, field: str, amount: int) -> None:
        slot = (key, field)
        if slot in self._pending or len(self._pending) < MAX_PENDING:
            self._pending[slot] = self._pending.get(slot, 0) + amount

    def flush(self, client: redis.Redis | None = None) -> int:
        """Add the pending counts to Redis now; returns how many fields were written. On a
        Redis error the counts are kept for the next flush."""
        with self._lock:
            self._expand()
            pending, ttls = self._pending, self._ttls
            self._pending, self._ttls = {}, {}
        if not pending:
            return 0
        pipe = (client or connection.client()).pipeline(transaction=False)
        for (key, field), amount in pending.items():
            pipe.hincrby(key, field, amount)
        for key, ttl in ttls.items():
            pipe.expire(key, ttl)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: could not write to Redis, will retry: %s", exc)
            with self._lock:
                for (key, field), amount in pending.items():
                    self._add(key, field, amount)
                for key, ttl in ttls.items():
                    self._ttls.setdefault(key, ttl)
            return 0
        return len(pending)

    def close(self) -> None:
        """Stop the flushing thread and write what is left (a worker calls it at stop)."""
        thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(self.interval + 5.0)
        self.flush()

    def _start(self) -> None:
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="sidequest-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            try:
                self.flush()
            except Exception:  # the thread must outlive any surprise; counts are best effort
                log.exception("metrics: flush failed")
        with self._lock:
            self._thread = None


#: The process-wide recorder the worker installs.
recorder = Recorder()


def _flush_at_exit() -> None:
    try:
        recorder.flush()
    except Exception as exc:  # Redis gone at exit: the last few seconds of counts are lost
        log.debug("metrics: final flush failed: %s", exc)


atexit.register(_flush_at_exit)
