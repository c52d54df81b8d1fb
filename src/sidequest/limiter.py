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

    class Text(Job):
        async def perform(self, user_id):
            async with sms:                 # in async code: waits without blocking the loop
                ...

Each acquire is one Lua script on Redis's clock (``TIME``), so limits hold exactly across
processes and hosts whatever their clocks say. A limiter's state expires once it is idle, so
names made per user (``limiter.bucket(f"user-{uid}", 10, "minute")``) do not fill Redis.

When the limit is reached, ``with`` waits up to ``wait_timeout`` seconds (default 0) for a
slot, then raises :class:`OverLimit`. Raised out of ``perform``, it does not count as a
failure: the worker puts the job back in the schedule with a growing delay, without using a
retry, and counts it as "over limit"; after ``max_reschedules`` (default 20) the job dies as
after its last retry (the dead set unless ``dead = False``; the death handlers run).

``async with`` does the same in async code while the event loop runs other jobs (its Redis
calls run in a thread); a plain ``with`` there would freeze the loop, so it is refused.

A concurrent slot is held until the ``with`` block ends. While the process lives, its slots
are renewed every third of ``lock_timeout``; a process that dies loses its slots after
``lock_timeout``, never sooner while it is alive. A job that enters a concurrent limiter
again while it holds all its slots (``with one:`` inside ``with one:`` on a limiter of 1)
would wait for itself: that raises a RuntimeError at once.

One name is one limiter (limiter_names.py): the same name made again with another kind or
other limits is refused.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from datetime import timedelta
from typing import Any, NamedTuple

import redis

from sidequest import client, connection, keys, limiter_args, limiter_held, limiter_names
from sidequest import limiter_renewal as renewal
from sidequest.errors import RedisUnavailable
from sidequest.limiter_held import give_back as give_back  # noqa: PLC0414 - kept as limiter.<name>
from sidequest.limiter_held import mark_rescheduled as mark_rescheduled  # noqa: PLC0414 - as above
from sidequest.limiter_held import rescheduled as rescheduled  # noqa: PLC0414 - as above
from sidequest.limiter_held import take_left as take_left  # noqa: PLC0414 - as above
from sidequest.limiter_held import unmark as unmark  # noqa: PLC0414 - as above
from sidequest.limiter_names import LimiterConflict

__all__ = ["BucketLimiter", "ConcurrentLimiter", "Limiter", "LimiterConflict", "OverLimit",
           "WindowLimiter", "bucket", "concurrent", "max_reschedules", "window"]

#: The thread of the worker's event loop for async jobs (worker/asyncio_runner.py).
ASYNC_JOBS_THREAD = "sidequest-asyncio"
#: Reschedules of one job because of a full limiter before it goes to the dead set.
max_reschedules = 20

#: Longest sleep between two tries while waiting for a slot, in seconds.
MAX_NAP = 0.5
#: With several Redis servers, every limiter lives on the default one, so that jobs of every
#: shard share its slots.
LIMITER_SHARD = "default"

log = logging.getLogger("sidequest")


class LimiterUnreachable(redis.ConnectionError, RedisUnavailable):
    """A limiter's Redis could not be reached: a RedisUnavailable naming the limiter, and the
    ``redis.ConnectionError`` it raised before, so code that catches that still does."""


class OverLimit(Exception):
    """A limiter was full for longer than its ``wait_timeout``."""

    def __init__(self, name: str, retry_in: float, why: str | None = None) -> None:
        super().__init__(f"limiter {name!r} is full; "
                         + (why or f"a slot frees in {retry_in:.2f} s"))
        self.name = name
        #: Seconds until the limiter expects a slot; 0 when it cannot tell (a concurrent
        #: slot frees whenever its holder leaves).
        self.retry_in = retry_in


#: The token of a slot taken in the testing modes (no Redis): held as a real one is, so that
#: a ``with`` nested in another on the same limiter fails in a unit test as in a worker.
LOCAL_TOKEN = "local"


def _untested() -> int:
    """In the testing modes (sidequest.testing) a limiter lets every call through at once,
    without Redis: what is tested is the job, not the limit."""
    return int(time.time() * 1000)


class _Attempt(NamedTuple):
    taken: bool
    wait: float  # seconds until a slot may free
    at: int  # Redis's time, ms
    token: str | None = None  # the concurrent slot taken


class Limiter:
    """What the three kinds share: ``with limiter:`` and ``async with limiter:``, waiting up
    to ``wait_timeout``."""

    kind = ""

    def __init__(self, name: str, limit: int, interval: float, wait_timeout: float) -> None:
        limiter_args.check(name, limit)
        self.name, self.limit, self.wait_timeout = name, limit, wait_timeout
        self._interval_ms = max(1, round(interval * 1000))
        self._interval = interval
        self._member = f"{self.kind}|{limit}|{interval:g}|{name}"
        #: Where the application made it: named by a same-name conflict.
        self.defined_at = limiter_names.site()
        limiter_names.register(self)

    @property
    def definition(self) -> str:
        """The call that makes this limiter, ``wait_timeout`` aside: two limiters of one
        name must agree on it."""
        return f"limiter.{self.kind}({self.name!r}, {self.limit}, {self._interval:g})"

    @property
    def key(self) -> str:
        """Named at each use: a limiter is built at import, before the first Redis client
        decides whether key names carry the Redis Cluster tag."""
        return keys.limiter(self.name)

    def _full(self, attempt: _Attempt) -> OverLimit:
        return OverLimit(self.name, attempt.wait)

    def _try(self) -> _Attempt:
        """One acquire attempt, one Redis round trip; records nothing (it may run in a
        thread of its own for ``async with``: the caller records the slot)."""
        raise NotImplementedError

    def acquire(self) -> int:
        """Take a slot, waiting up to ``wait_timeout``; raise OverLimit after that. Returns
        when it was taken, in milliseconds on Redis's clock."""
        self._refuse_on_loop()
        self._refuse_reentry()
        if client.pushes_are_local():
            return self._took_locally()
        deadline = time.monotonic() + self.wait_timeout
        while True:
            attempt = self._try()
            if attempt.taken:
                return self._took(attempt)
            time.sleep(self._nap(attempt, deadline))

    async def aacquire(self) -> int:
        """``acquire`` for async code: waits with ``await`` and calls Redis in a thread, so
        the event loop runs other jobs (and the slot's holder) meanwhile."""
        self._refuse_reentry()
        if client.pushes_are_local():
            return self._took_locally()
        deadline = time.monotonic() + self.wait_timeout
        while True:
            attempt = await self._atry()
            if attempt.taken:
                return self._took(attempt)
            await asyncio.sleep(self._nap(attempt, deadline))

    def _nap(self, attempt: _Attempt, deadline: float) -> float:
        """Seconds to wait before the next try; OverLimit once ``wait_timeout`` is spent."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._full(attempt)
        return min(max(attempt.wait, 0.001), left, MAX_NAP)

    async def _atry(self) -> _Attempt:
        # redis-py's client blocks: in a thread, the loop goes on.
        call = asyncio.ensure_future(asyncio.to_thread(self._try))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            # Cancelled (a timeout, a stop) while the thread still runs: a slot it takes has
            # no holder left, and would stay taken until its lock timeout.
            call.add_done_callback(self._abandon)
            raise

    def _abandon(self, call: asyncio.Future[_Attempt]) -> None:
        token = None if call.cancelled() or call.exception() else call.result().token
        if token is not None:  # a thread: the loop may be closing
            threading.Thread(target=renewal.quietly, args=(lambda: self._give_back(token),),
                             name="sidequest-limiter-release", daemon=True).start()

    def _refuse_on_loop(self) -> None:
        """A plain ``with`` in an ``async def perform`` would block the worker's event loop
        while it waits, and every other async job (even the slot's holder) with it. Only
        there: a loop of someone else's in this thread (a notebook's, a test tool's that
        drives a browser) is theirs to block."""
        if threading.current_thread().name != ASYNC_JOBS_THREAD and not limiter_held.on_job_loop():
            return
        raise RuntimeError(
            f"limiter {self.name!r}: `with` (or acquire()) inside async code would block the "
            f"event loop, and every async job with it, while it waits for a slot: use "
            f"`async with` on the limiter (or `await aacquire()` and `await arelease()`)")

    def _refuse_reentry(self) -> None:
        """Only a concurrent slot is held: a rate (bucket, window) can be taken twice."""

    def _took(self, attempt: _Attempt) -> int:
        """Record a slot taken in this context; returns when, on Redis's clock."""
        return attempt.at

    def _took_locally(self) -> int:
        """The testing modes: every call goes through at once, without Redis."""
        return _untested()

    def release(self) -> None:
        """Give back what ``acquire`` took (only a concurrent slot is given back)."""

    async def arelease(self) -> None:
        """``release`` for async code."""

    def _give_back(self, token: str) -> None:
        """Free a slot in Redis (concurrent only)."""

    def __enter__(self) -> Limiter:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> Limiter:
        await self.aacquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.arelease()

    def _run(self, script: str, args: list[Any]) -> tuple[bool, float, int]:
        client = connection.client_for(LIMITER_SHARD)
        try:
            taken, wait_ms, now_ms = connection.script(script)(
                keys=[self.key, keys.LIMITERS], args=args, client=client)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._unreachable(exc) from exc
        except redis.ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            raise limiter_names.other_kind(self, client) from exc
        return bool(taken), int(wait_ms) / 1000, int(now_ms)


    def _unreachable(self, exc: redis.RedisError) -> LimiterUnreachable:
        """Said plainly, since with shards the job's own Redis may be up: every limiter
        lives on the default one."""
        where = connection.redacted(connection.shard_url(LIMITER_SHARD))
        shard = " (limiters live on the default shard)" if len(connection.shard_names()) > 1 \
            else ""
        return LimiterUnreachable(f"limiter {self.name!r} could not reach its Redis at"
                                  f" {where}{shard}: {exc}. Start it or correct its URL")


class ConcurrentLimiter(Limiter):
    kind = "concurrent"

    def __init__(self, name: str, limit: int, lock_timeout: float, wait_timeout: float) -> None:
        super().__init__(name, limit, lock_timeout, wait_timeout)  # its interval: the lock's

    @property
    def definition(self) -> str:
        return f"limiter.concurrent({self.name!r}, {self.limit}, lock_timeout={self._interval:g})"

    def _full(self, attempt: _Attempt) -> OverLimit:
        # The script's wait is when the oldest lease would lapse, which its live holder keeps
        # renewing: a worst case (a dead holder), not when a slot frees. A job sent back
        # takes the reschedule steps alone.
        held = "its one slot is held" if self.limit == 1 else f"all {self.limit} slots are held"
        return OverLimit(self.name, 0.0, f"{held}; a slot frees when its holder leaves its"
                         f" block (or {self._interval:g} s after a holder's process died)")

    def _try(self) -> _Attempt:
        token = secrets.token_hex(8)
        if renewal.owner:  # its process named, to be freed at once if that one dies
            token = f"{renewal.owner}|{token}"
        taken, wait, at = self._run("limiter_concurrent",
                                    [self.limit, self._interval_ms, token, self._member])
        return _Attempt(taken, wait, at, token if taken else None)

    def _refuse_reentry(self) -> None:
        """An acquire by the thread or task that already holds every slot (the only one, most
        often: a ``with`` inside another on the same limiter) would wait for itself: until
        ``wait_timeout``, then at every reschedule, the job dying after the last with a
        message that blames some other holder. Said at once instead. By name, as one name
        is one limiter: a second object made under it shares its slots."""
        if limiter_held.mine(self.name) < self.limit:
            return
        slots = "its only slot" if self.limit == 1 else f"all {self.limit} of its slots"
        raise RuntimeError(
            f"limiter {self.name!r} is already held by this same job (in this thread or "
            f"asyncio task), which holds {slots}: a `with` on it inside another on it (or "
            f"another acquire() before release()) would wait for a slot that only this job "
            f"can free: re-entering a concurrent limiter is not supported. Hold it once, "
            f"around the whole block")

    def _took(self, attempt: _Attempt) -> int:
        assert attempt.token is not None
        limiter_held.hold(self, attempt.token)
        renewal.renewer.hold(self, attempt.token)
        return attempt.at

    def _took_locally(self) -> int:
        limiter_held.hold(self, LOCAL_TOKEN)  # so that a nested `with` is refused here too
        return _untested()

    def _untake(self) -> str | None:
        """Forget this context's innermost slot of this limiter; its token, if any."""
        token = limiter_held.forget(self)
        if token is not None:
            renewal.renewer.drop(self, token)
        return token

    def release(self) -> None:
        token = self._untake()
        if token is not None and token != LOCAL_TOKEN:
            self._give_back(token)

    async def arelease(self) -> None:
        token = self._untake()  # at once: the slot is this task's no more, even if cancelled
        if token is not None and token != LOCAL_TOKEN:
            await asyncio.to_thread(self._give_back, token)

    def _give_back(self, token: str) -> None:
        try:
            connection.client_for(LIMITER_SHARD).zrem(self.key, token)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Not the job's failure: its work is done, and running it again for this would
            # do it twice. No longer renewed, the slot frees itself within lock_timeout.
            log.warning("%s; its slot frees itself within %g s", self._unreachable(exc),
                        self._interval)

    def renew(self, tokens: list[str], mode: str = "renew") -> list[str]:
        """Extend these slots (``mode`` "renew": the tokens no longer there are returned) or
        write them back ("reclaim"): see lua/limiter_renew.lua."""
        found = connection.script("limiter_renew")(
            keys=[self.key], args=[self._interval_ms, mode, *tokens],
            client=connection.client_for(LIMITER_SHARD))
        return [t.decode() if isinstance(t, bytes) else str(t) for t in found or []]


class BucketLimiter(Limiter):
    kind = "bucket"

    def _try(self) -> _Attempt:
        return _Attempt(*self._run("limiter_bucket",
                                   [self.limit, self._interval_ms, self._member]))


class WindowLimiter(Limiter):
    kind = "window"

    def _try(self) -> _Attempt:
        call = secrets.token_hex(8)
        return _Attempt(*self._run("limiter_window",
                                   [self.limit, self._interval_ms, call, self._member]))


def concurrent(name: str, limit: int, lock_timeout: float | timedelta = 30,
               wait_timeout: float | timedelta = 0) -> ConcurrentLimiter:
    """At most ``limit`` holders at once across every process."""
    lock = limiter_args.duration(name, "lock_timeout", lock_timeout, zero=False)
    return ConcurrentLimiter(name, limit, lock, limiter_args.duration(
        name, "wait_timeout", wait_timeout, zero=True))


def bucket(name: str, limit: int, interval: float | str | timedelta,
           wait_timeout: float | timedelta = 0) -> BucketLimiter:
    """At most ``limit`` calls per fixed ``interval`` ("second", "minute", "hour", "day" or
    seconds), counted from the start of each interval on Redis's clock."""
    return BucketLimiter(name, limit, limiter_args.seconds(name, interval),
                         limiter_args.duration(name, "wait_timeout", wait_timeout, zero=True))


def window(name: str, limit: int, interval: float | str | timedelta,
           wait_timeout: float | timedelta = 0) -> WindowLimiter:
    """At most ``limit`` calls in any sliding ``interval``."""
    return WindowLimiter(name, limit, limiter_args.seconds(name, interval),
                         limiter_args.duration(name, "wait_timeout", wait_timeout, zero=True))
