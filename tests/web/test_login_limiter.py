"""The login limiter: kept in Redis (shared by every process), failures slow an address down
without locking it out, one cap holds for all addresses, and forwarded headers count only
from a trusted proxy. The limiter's delays are shortened here; the defaults are seconds."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
import redis
from starlette.applications import Starlette

from helpers import wait_for
from redis_server import free_port
from serving_helpers import answers, env_for, serve, stop
from sidequest import keys
from sidequest.errors import ConfigError
from sidequest.web import create_app
from sidequest.web.limiter import LoginLimiter
from sidequest.web.server import BackgroundServer
from sidequest.web.session import COOKIE
from web_helpers import CSRF, PASSWORD, Client

pytestmark = pytest.mark.redis


def tuned(app: Starlette, **tuning: float) -> Starlette:
    limiter: LoginLimiter = app.state.sidequest.limiter
    for name, value in tuning.items():
        assert hasattr(limiter, name), name
        setattr(limiter, name, value)
    return app


def timed_login(client: Client, password: str) -> tuple[int, float]:
    started = time.monotonic()
    status = client.login(password).status_code
    return status, time.monotonic() - started


def test_failures_slow_down_and_the_right_password_still_gets_in(redis_url: str,
                                                                  r: redis.Redis) -> None:
    app = tuned(create_app(password=PASSWORD), free_failures=2, base_delay=0.1, max_delay=0.4)
    with Client(app) as client:
        for _ in range(8):  # far past where the old limiter locked everyone out
            assert client.login("wrong").status_code == 401
        assert r.get(keys.web_login_failures("testclient")) == "8"
        assert 0 < r.ttl(keys.web_login_failures("testclient")) <= 900
        status, elapsed = timed_login(client, "wrong")
        assert status == 401 and elapsed >= 0.4  # the longest delay, not a refusal
        status, elapsed = timed_login(client, PASSWORD)
        assert status == 303 and elapsed >= 0.4  # the right one waits as long, then gets in
        assert client.get("/stats").status_code == 200


def test_the_right_password_clears_the_address_failures(redis_url: str,
                                                        r: redis.Redis) -> None:
    """Typos cost seconds: once the right password is in, the next login waits for nothing
    (before, every login from the address waited until 15 minutes after the last typo)."""
    app = tuned(create_app(password=PASSWORD), free_failures=2, base_delay=0.2, max_delay=0.4)
    with Client(app) as client:
        for _ in range(4):
            assert client.login("wrong").status_code == 401
        status, elapsed = timed_login(client, PASSWORD)
        assert status == 303 and elapsed >= 0.4  # this one still waits, as a wrong one would
        assert r.get(keys.web_login_failures("testclient")) is None
        status, elapsed = timed_login(client, PASSWORD)
        assert status == 303 and elapsed < 0.2


def test_a_login_clears_only_its_own_address(redis_url: str, r: redis.Redis) -> None:
    limiter = LoginLimiter()
    for address in ("198.51.100.1", "198.51.100.2", "2001:db8::1"):
        limiter._failed(address)
    limiter._succeeded("198.51.100.1")
    limiter._succeeded("2001:db8::ffff")  # the same /64
    assert failures(r) == {"198.51.100.2": "1"}


def test_failures_are_kept_for_the_window_after_the_last_one(redis_url: str,
                                                              r: redis.Redis) -> None:
    """As docs/security.md says: a guesser who keeps going never gets a fresh start."""
    limiter = LoginLimiter(window=900)
    key = keys.web_login_failures("198.51.100.1")
    limiter._failed("198.51.100.1")
    r.expire(key, 5)  # the first failure was almost 15 minutes ago
    limiter._failed("198.51.100.1")
    assert r.get(key) == "2" and r.ttl(key) > 890


@pytest.mark.parametrize(("failures", "delay"), [(0, 0.0), (4, 0.0), (5, 0.5), (6, 1.0),
                                                  (10**9, 10.0)])
def test_a_clean_address_is_not_delayed(redis_url: str, r: redis.Redis, failures: int,
                                        delay: float) -> None:
    """The delay doubles from base_delay once free_failures are spent, up to max_delay."""
    limiter = LoginLimiter()
    r.set(keys.web_login_failures("198.51.100.9"), failures)
    assert limiter._admit("198.51.100.9").wait == pytest.approx(delay, abs=0.01)


def test_one_flooding_address_leaves_the_queue_to_the_others(redis_url: str,
                                                             r: redis.Redis) -> None:
    """An address past its free failures has one attempt waiting at a time: the rest are
    refused before they take a shared slot (before, one client's flood took every slot, and
    the right password from another address was refused for as long as it lasted)."""
    limiter = LoginLimiter(per_minute=30, burst=10)
    r.set(keys.web_login_failures("198.51.100.66"), 20)
    first = limiter._admit("198.51.100.66")
    assert first.retry_after is None and first.wait == limiter.max_delay
    flood = [limiter._admit("198.51.100.66") for _ in range(40)]
    assert all(a.retry_after is not None and 0 < a.retry_after <= limiter.max_delay
               for a in flood)
    colleague = limiter._admit("198.51.100.7")
    assert colleague.retry_after is None and colleague.wait == 0.0


@pytest.mark.parametrize("per_minute", [0, -5])
def test_a_cap_below_one_is_refused(redis_url: str, per_minute: int) -> None:
    with pytest.raises(ConfigError, match="login_attempts_per_minute must be 1 or more"):
        create_app(password=PASSWORD, login_attempts_per_minute=per_minute)


def test_one_cap_for_every_process_and_address(redis_url: str) -> None:
    """Two processes (apps) on one Redis: together they check no more than the cap."""
    apps = [tuned(create_app(password=PASSWORD, login_attempts_per_minute=600),
                  burst=2, free_failures=1000) for _ in range(2)]
    with Client(apps[0]) as one, Client(apps[1]) as two:
        started = time.monotonic()
        for attempt in range(12):
            assert (one, two)[attempt % 2].login("wrong").status_code == 401
        elapsed = time.monotonic() - started
    # 600 a minute is one every 0.1 s; two go at once, the other ten wait their turn.
    assert elapsed >= 0.95, f"12 attempts took {elapsed:.2f}s"


def test_a_full_queue_is_told_when_to_come_back(redis_url: str, r: redis.Redis) -> None:
    app = tuned(create_app(password=PASSWORD, login_attempts_per_minute=6), burst=1,
                max_wait=1.0)
    with Client(app) as client:
        assert client.login("wrong").status_code == 401
        answer = client.login()  # the next slot is 10 s away: more than max_wait
        assert answer.status_code == 429 and "try again in" in answer.text
        assert 'name="password"' in answer.text, "the form again, to send once the wait is over"
        assert 8 <= int(answer.headers["retry-after"]) <= 9
        assert r.get(keys.web_login_failures("testclient")) == "1"  # the 429 checked nothing
        assert client.get("/stats").status_code == 401


def test_odd_values_in_the_limiter_keys_do_not_stop_logins(redis_url: str,
                                                           r: redis.Redis) -> None:
    r.hset(keys.WEB_LOGIN_SLOT, "x", "y")
    r.set(keys.web_login_failures("testclient"), "not a number")
    with Client(create_app(password=PASSWORD)) as client:
        assert client.login("wrong").status_code == 401
        assert r.get(keys.web_login_failures("testclient")) == "1"
        assert client.login().status_code == 303
    for odd in ("5.5", "1e20"):  # numbers Lua reads, written back in forms int() refuses
        r.set(keys.web_login_failures("testclient"), odd)
        with Client(create_app(password=PASSWORD)) as client:
            assert client.login("wrong").status_code == 401, odd


# Real servers: which address a request comes from is uvicorn's business.

class Browser:
    """Logs in to a real server from a chosen source address, as a browser posts the form."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.port, self.source = port, source

    def login(self, password: str, headers: dict[str, str] | None = None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                                source_address=(self.source, 0))
        try:
            connection.request("GET", "/login")
            page = connection.getresponse()
            cookie: SimpleCookie = SimpleCookie(page.getheader("set-cookie"))
            token = CSRF.search(page.read().decode())
            assert token
            body = urlencode({"csrf": token.group(1), "password": password, "next": "/"})
            connection.request("POST", "/login", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Sec-Fetch-Site": "same-origin",
                "Cookie": f"{COOKIE}={cookie[COOKIE].value}", **(headers or {})})
            answer = connection.getresponse()
            answer.read()
            return answer.status
        finally:
            connection.close()


@pytest.fixture
def served(redis_url: str, request: pytest.FixtureRequest) -> Iterator[BackgroundServer]:
    app = tuned(create_app(password=PASSWORD, login_attempts_per_minute=600), burst=2,
                free_failures=1000)
    trusted = getattr(request, "param", None)
    server = BackgroundServer(app, forwarded_allow_ips=trusted).start()
    try:
        yield server
    finally:
        server.stop()


def failures(r: redis.Redis) -> dict[str, str]:
    prefix = keys.web_login_failures("")
    return {key[len(prefix):]: r.get(key) or "" for key in r.scan_iter(prefix + "*")}


def test_forwarded_headers_are_ignored_by_default(served: BackgroundServer,
                                                  r: redis.Redis) -> None:
    browser = Browser(served.port)
    for n in range(6):
        forged = {"X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=198.51.100.{n}"}
        assert browser.login("wrong", forged) == 401
    assert failures(r) == {"127.0.0.1": "6"}


@pytest.mark.parametrize("served", ["127.0.0.1"], indirect=True)
def test_forwarded_headers_of_a_trusted_proxy_name_the_client(served: BackgroundServer,
                                                              r: redis.Redis) -> None:
    browser = Browser(served.port)
    for n in range(3):
        assert browser.login("wrong", {"X-Forwarded-For": f"198.51.100.{n}"}) == 401
    assert failures(r) == {f"198.51.100.{n}": "1" for n in range(3)}
    # What a client wrote itself comes first; the proxy appends the address it saw.
    assert browser.login("wrong", {"X-Forwarded-For": "203.0.113.1, 198.51.100.50"}) == 401
    assert "198.51.100.50" in failures(r) and "203.0.113.1" not in failures(r)
    other = Browser(served.port, source="127.0.0.2")  # not the trusted proxy
    assert other.login("wrong", {"X-Forwarded-For": "203.0.113.9"}) == 401
    assert failures(r)["127.0.0.2"] == "1" and "203.0.113.9" not in failures(r)


def test_many_source_addresses_share_one_cap(served: BackgroundServer, r: redis.Redis) -> None:
    """Ten loopback addresses guessing at once: still no more than 600 a minute."""
    results: list[int] = []

    def guess(source: str) -> None:
        for _ in range(2):
            results.append(Browser(served.port, source).login("wrong"))

    threads = [threading.Thread(target=guess, args=(f"127.0.0.{n}",)) for n in range(2, 12)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    assert results == [401] * 20
    assert len(failures(r)) == 10
    # Twenty attempts, two at once, the rest one per 0.1 s: at least 1.8 s, however parallel.
    assert elapsed >= 1.75, f"20 attempts from 10 addresses took {elapsed:.2f}s"


@pytest.mark.parametrize(("flags", "counted_as"), [
    ([], "127.0.0.1"),
    (["--forwarded-allow-ips", "127.0.0.1"], "198.51.100.7"),
])
def test_sidequest_web_trusts_forwarded_headers_only_when_told(
        redis_url: str, r: redis.Redis, flags: list[str], counted_as: str) -> None:
    port = free_port()
    proc = serve(["web", "--port", str(port), *flags],
                 env_for(redis_url, SIDEQUEST_WEB_PASSWORD=PASSWORD))
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/login"), 20, "sidequest web")
        assert Browser(port).login("wrong", {"X-Forwarded-For": "198.51.100.7"}) == 401
    finally:
        stop(proc)
    assert failures(r) == {counted_as: "1"}


def test_a_slowed_answer_says_why_it_took_long(redis_url: str) -> None:
    # The page spun for up to 10 s, then said only "Wrong password.": it looked broken.
    app = tuned(create_app(password=PASSWORD), free_failures=2, base_delay=0.1, max_delay=0.4)
    with Client(app) as client:
        first = client.login("wrong")
        assert first.status_code == 401 and "waits longer" not in first.text
        for _ in range(3):
            later = client.login("wrong")
        assert "each answer waits longer (up to 0.4 s)" in later.text, later.text
