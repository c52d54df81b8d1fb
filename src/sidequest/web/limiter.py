"""The login limiter: failed logins slow down further attempts, and one cap holds for all.

Both counts live in Redis, so every process serving the dashboard shares them:

- every attempt takes the next slot of a queue shared by all clients (``per_minute`` slots a
  minute, ``burst`` at once); it waits for its slot, and when the wait would exceed
  ``max_wait`` it is answered 429 with ``Retry-After`` without checking the password. However
  many addresses (or forged headers) an attacker uses, no more than ``per_minute`` guesses a
  minute are checked;
- each client address (an IPv6 /64) that failed ``free_failures`` times or more waits
  ``base_delay``, doubled per further failure, up to ``max_delay``, before its password is
  checked. Its count is kept until ``window`` seconds pass without a failure from it (each
  failure starts the window again, so steady guessing never gets a fresh start) or until the
  right password logs in from it, which clears it. Failures lock nobody out: the right password
  still logs in after the delay, and the address's next login is not delayed, so a
  colleague's typos behind the same NAT cost seconds, not the day. Such an address has one
  attempt waiting at a time: the others are answered 429 before they take a shared slot, so a
  client flooding the form from one address cannot fill the queue that the other addresses
  need to log in (lua/login_slot.lua); while it keeps guessing, others behind the same
  address rarely get that one place (docs/security.md).

The address is the one uvicorn reports: the TCP peer, or a proxy's forwarded header only when
that proxy is trusted (``sidequest web --forwarded-allow-ips``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import redis
from starlette.concurrency import run_in_threadpool

from sidequest import connection, keys


@dataclass(frozen=True)
class Admission:
    #: Seconds to wait before the password may be checked.
    wait: float
    #: Set when the attempt is refused (the queue is full): seconds until a slot frees.
    retry_after: float | None = None
    #: Whether this address failed often enough that its attempts are delayed.
    slowed: bool = False


class LoginLimiter:
    """Tuning is public attributes (tests shorten the delays); see the module's docstring."""

    def __init__(self, *, per_minute: int = 30, burst: int = 10, max_wait: float = 30.0,
                 free_failures: int = 5, base_delay: float = 0.5, max_delay: float = 10.0,
                 window: float = 900.0,
                 client: Callable[[], redis.Redis] = connection.client) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.max_wait = max_wait
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.window = window
        self._client = client

    async def admit(self, address: str) -> Admission:
        """Raises redis.RedisError when Redis cannot be asked."""
        return await run_in_threadpool(self._admit, address)

    def _admit(self, address: str) -> Admission:
        script = connection.script("login_slot")
        bucket = _bucket(address)
        verdict, seconds, failures = script(
            keys=[keys.WEB_LOGIN_SLOT, keys.web_login_failures(bucket),
                  keys.web_login_next(bucket)],
            args=[60.0 / self.per_minute, self.burst, self.max_wait, self.free_failures,
                  self.base_delay, self.max_delay], client=self._client(),
        )
        if verdict in (b"full", b"later"):
            return Admission(wait=0.0, retry_after=float(seconds))
        # The slot's wait, or the address's delay.
        return Admission(wait=float(seconds), slowed=_count(failures) >= self.free_failures)

    async def failed(self, address: str) -> None:
        await run_in_threadpool(self._failed, address)

    def _failed(self, address: str) -> None:
        key = keys.web_login_failures(_bucket(address))
        try:
            with self._client().pipeline(transaction=True) as pipe:
                pipe.incr(key)
                # From the last failure, not the first: a guesser who keeps going never
                # starts afresh; typos are cleared by the login that follows them.
                pipe.expire(key, int(self.window))
                pipe.execute()
        except redis.ResponseError:  # not a number (written by hand?): start counting again
            self._client().set(key, 1, ex=int(self.window))

    async def succeeded(self, address: str) -> None:
        """The right password logged in from ``address``: forget its failures, so that its
        next login is not delayed (the failures were typos, not guesses)."""
        await run_in_threadpool(self._succeeded, address)

    def _succeeded(self, address: str) -> None:
        self._client().delete(keys.web_login_failures(_bucket(address)))


def _bucket(address: str) -> str:
    """The address failures are counted under: IPv6 by /64, as one host may hold all of it."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # "testclient", a Unix socket's name: not an IP
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def _count(reply: object) -> float:
    """The failure count the script read: another tool may have written it as "5.5" or
    "1e+20", which int() refuses; unreadable counts as none, as the script does."""
    try:
        return float(reply)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
