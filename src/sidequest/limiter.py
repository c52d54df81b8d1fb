"""Rate limiters shared by every process on the Redis: how many at once, how many per
interval, how many in any sliding interval.

    from sidequest import limiter, OverLimit

    stripe = limiter.concurrent("stripe", 5, lock_timeout=30)   # at most 5 holders at once
    github = limiter.bucket("github", 5000, "hour")             # 5,000 per clock hour
    sms = limiter.window("sms", 10, "second", wait_timeout=5)   # 10 in any second; may wait

    class Charge(Job):
        def perform(self, order_id):
            with stripe:
                ...

Each acquire is one Lua script on Redis's clock (``TIME``), so limits hold exactly across
processes and hosts whatever their clocks say. A limiter's state expires once it is idle, so
names made per user (``limiter.bucket(f"user-{uid}", 10, "minute")``) do not fill Redis.

When the limit is reached, ``with`` waits up to ``wait_timeout`` seconds (default 0) for a
slot, then raises :class:`OverLimit`. Raised out of ``perform``, it does not count as a
failure: the worker puts the job back in the schedule with a growing delay, without using a
retry, and counts it as "over limit"; after ``max_reschedules`` (default 20) the job dies as
after its last retry (the dead set unless ``dead = False``; the death handlers run).

A concurrent slot is held until the ``with`` block ends. While the process lives, its slots
are renewed every third of ``lock_timeout``; a process that dies loses its slots after
``lock_timeout``, never sooner while it is alive.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from sidequest import connection, keys

#: Reschedules of one job because of a full limiter before it goes to the dead set.
max_reschedules = 20

INTERVALS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
#: Longest sleep between two tries while waiting for a slot, in seconds.
MAX_NAP = 0.5
#: With several Redis servers, every limiter lives on the default one, so that jobs of every
#: shard share its slots.
LIMITER_SHARD = "default"


class OverLimit(Exception):
    """A limiter was full for longer than its ``wait_timeout``."""

    def __init__(self, name: str, retry_in: float) -> None:
        super().__init__(f"rate limiter {name!r} is full; a slot frees in {retry_in:.2f} s")
        self.name = name
        self.retry_in = retry_in


def _seconds(name: str, interval: float | str) -> float:
    if isinstance(interval, str):
        if interval not in INTERVALS:
            raise ValueError(f"limiter {name!r}: interval {interval!r}: use one of "
                             f"{', '.join(INTERVALS)} or a number of seconds")
        return INTERVALS[interval]
    return _duration(name, "interval", interval, zero=False)


def _duration(name: str, what: str, value: object, zero: bool) -> float:
    """A finite number of seconds (above 0, or from 0 when ``zero``), else a clear error."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0 or (value == 0 and not zero)):
        least = ">= 0" if zero else "above 0"
        raise ValueError(f"limiter {name!r}: {what} must be a finite number of seconds {least}, "
                         f"got {value!r}")
    return float(value)


def _check(name: str, limit: int) -> None:
    if not isinstance(name, str) or not name or "|" in name:
        raise ValueError(f"a limiter needs a non-empty name without '|', got {name!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limiter {name!r}: the limit must be a whole number >= 1, got "
                         f"{limit!r}")


class Limiter:
    """What the three kinds share: ``with limiter:``, waiting up to ``wait_timeout``."""

    kind = ""

    def __init__(self, name: str, limit: int, interval: float, wait_timeout: float) -> None:
        _check(name, limit)
        self.name, self.limit, self.wait_timeout = name, limit, wait_timeout
        self._interval_ms = max(1, round(interval * 1000))
        self._member = f"{self.kind}|{limit}|{interval:g}|{name}"

    @property
    def key(self) -> str:
        """Named at each use: a limiter is built at import, before the first Redis client
        decides whether key names carry the Redis Cluster tag."""
        return keys.limiter(self.name)

    def _try(self) -> tuple[bool, float, int]:
        """One acquire attempt: (taken, seconds until one may free, Redis's time in ms)."""
        raise NotImplementedError

    def acquire(self) -> int:
        """Take a slot, waiting up to ``wait_timeout``; raise OverLimit after that. Returns
        when it was taken, in milliseconds on Redis's clock."""
        deadline = time.monotonic() + self.wait_timeout
        while True:
            taken, wait, at = self._try()
            if taken:
                return at
            left = deadline - time.monotonic()
            if left <= 0:
                raise OverLimit(self.name, wait)
            time.sleep(min(max(wait, 0.001), left, MAX_NAP))

    def release(self) -> None:
        """Give back what ``acquire`` took (only a concurrent slot is given back)."""

    def __enter__(self) -> Limiter:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _run(self, script: str, args: list[Any]) -> tuple[bool, float, int]:
        taken, wait_ms, now_ms = connection.script(script)(
            keys=[self.key, keys.LIMITERS], args=args,
            client=connection.client_for(LIMITER_SHARD))
        return bool(taken), int(wait_ms) / 1000, int(now_ms)


class ConcurrentLimiter(Limiter):
    kind = "concurrent"

    def __init__(self, name: str, limit: int, lock_timeout: float, wait_timeout: float) -> None:
        super().__init__(name, limit, lock_timeout, wait_timeout)
        # Tokens this thread holds, innermost last: the same limiter may be nested.
        self._held = threading.local()

    def _try(self) -> tuple[bool, float, int]:
        token = secrets.token_hex(8)
        taken, wait, at = self._run("limiter_concurrent",
                                    [self.limit, self._interval_ms, token, self._member])
        if taken:
            self._tokens().append(token)
            _renewer.hold(self, token)
        return taken, wait, at

    def _tokens(self) -> list[str]:
        if not hasattr(self._held, "tokens"):
            self._held.tokens = []
        tokens: list[str] = self._held.tokens
        return tokens

    def release(self) -> None:
        tokens = self._tokens()
        if tokens:
            token = tokens.pop()
            _renewer.drop(self, token)
            connection.client_for(LIMITER_SHARD).zrem(self.key, token)

    def renew(self, tokens: list[str]) -> None:
        connection.script("limiter_renew")(keys=[self.key], args=[self._interval_ms, *tokens],
                                           client=connection.client_for(LIMITER_SHARD))


class BucketLimiter(Limiter):
    kind = "bucket"

    def _try(self) -> tuple[bool, float, int]:
        return self._run("limiter_bucket", [self.limit, self._interval_ms, self._member])


class WindowLimiter(Limiter):
    kind = "window"

    def _try(self) -> tuple[bool, float, int]:
        call = secrets.token_hex(8)
        return self._run("limiter_window", [self.limit, self._interval_ms, call, self._member])


def concurrent(name: str, limit: int, lock_timeout: float = 30,
               wait_timeout: float = 0) -> ConcurrentLimiter:
    """At most ``limit`` holders at once across every process."""
    lock = _duration(name, "lock_timeout", lock_timeout, zero=False)
    return ConcurrentLimiter(name, limit, lock, _duration(name, "wait_timeout", wait_timeout,
                                                          zero=True))


def bucket(name: str, limit: int, interval: float | str,
           wait_timeout: float = 0) -> BucketLimiter:
    """At most ``limit`` calls per fixed ``interval`` ("second", "minute", "hour", "day" or
    seconds), counted from the start of each interval on Redis's clock."""
    return BucketLimiter(name, limit, _seconds(name, interval),
                         _duration(name, "wait_timeout", wait_timeout, zero=True))


def window(name: str, limit: int, interval: float | str,
           wait_timeout: float = 0) -> WindowLimiter:
    """At most ``limit`` calls in any sliding ``interval``."""
    return WindowLimiter(name, limit, _seconds(name, interval),
                         _duration(name, "wait_timeout", wait_timeout, zero=True))


class _Renewer:
    """Extends the concurrent slots this process holds, so that a live holder never loses
    one; a daemon thread started at the first slot taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[ConcurrentLimiter, list[str]] = {}
        self._thread: threading.Thread | None = None
        # Set when a slot arrives whose lock timeout is shorter than the current nap allows:
        # the thread wakes at once rather than let that slot lapse while it sleeps.
        self._wake = threading.Event()
        self._period = float("inf")

    def hold(self, limiter: ConcurrentLimiter, token: str) -> None:
        with self._lock:
            self._held.setdefault(limiter, []).append(token)
            if limiter._interval_ms / 3000 < self._period:
                self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sidequest-limiters",
                                                daemon=True)
                self._thread.start()

    def drop(self, limiter: ConcurrentLimiter, token: str) -> None:
        with self._lock:
            tokens = self._held.get(limiter, [])
            if token in tokens:
                tokens.remove(token)
            if not tokens:
                self._held.pop(limiter, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                held = {lim: list(tokens) for lim, tokens in self._held.items()}
                shortest = min((lim._interval_ms for lim in held), default=3000) / 1000
                self._period = max(shortest / 3, 0.05)
                self._wake.clear()
            for lim, tokens in held.items():
                _quietly(lambda lim=lim, tokens=tokens: lim.renew(tokens))  # type: ignore[misc]
            self._wake.wait(self._period)


def _quietly(call: Callable[[], Any]) -> None:
    # Redis down: the slot's own expiry is the fallback; the next renewal tries again.
    with contextlib.suppress(Exception):
        call()


_renewer = _Renewer()


def _after_fork() -> None:
    # A forked child (``sidequest -P``) has none of its parent's threads: it starts its own
    # renewing thread at its first slot, and holds none of its parent's slots.
    global _renewer
    _renewer = _Renewer()


os.register_at_fork(after_in_child=_after_fork)
