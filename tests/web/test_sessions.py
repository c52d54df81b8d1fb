"""The session cookie and its life: malformed cookies are no session, logout and a changed
password revoke, the issue time is bounded, and weak passwords and secrets are refused."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import pytest
import redis
from starlette.applications import Starlette

from sidequest import keys
from sidequest.errors import ConfigError
from sidequest.web import create_app
from sidequest.web.session import COOKIE, Session
from web_helpers import PASSWORD, SAME_ORIGIN, Client, enqueue, job

pytestmark = pytest.mark.redis

#: Cookies a browser may carry (set by a sibling subdomain, or mangled): each is no session.
MALFORMED = [
    b"\xff\xfe",  # bytes that are not ASCII
    "caf\u00e9.sig".encode("latin-1"),
    b"e30.\xffsig",  # a signature that is not ASCII: hmac.compare_digest raised on it
    b"no-dot-at-all",
    b"a.b.c",  # too many parts
    b".",
    b"!!!not base64!!!.@@@",
    b"e30." + b"A" * 43,  # valid base64, wrong signature
    b"x" * 100_000 + b".y",  # huge
]


@pytest.mark.parametrize("value", MALFORMED)
@pytest.mark.parametrize("path", ["/login", "/", "/stats", "/static/app.css"])
def test_a_malformed_cookie_is_no_session(anon: Client, value: bytes, path: str) -> None:
    answer = anon.get(path, headers={"cookie": b"sidequest_session=" + value},
                      follow_redirects=False)
    assert answer.status_code in (200, 401, 303), answer.text
    assert answer.status_code == 200 or path != "/login"


def test_a_malformed_cookie_does_not_stop_a_login(app: Starlette) -> None:
    with Client(app) as client:
        page = client.get("/login", headers={"cookie": COOKIE.encode() + b"=e30.\xff"})
        assert page.status_code == 200 and COOKIE in page.headers["set-cookie"]
        assert client.login().status_code == 303
        assert client.get("/stats").status_code == 200


def live_session(app: Starlette, client: Client) -> Session:
    session = app.state.sidequest.signer.loads(client.cookies[COOKIE])
    assert session is not None and session.user is not None and session.sid
    return session


def test_logout_revokes_the_old_cookie(app: Starlette, client: Client, r: redis.Redis) -> None:
    enqueue(r, "default", job("a" * 24))
    cookie, token = client.cookies[COOKIE], client.token("/")
    sid = live_session(app, client).sid
    assert sid and 0 < r.ttl(keys.web_session(sid)) <= 12 * 3600
    assert client.submit("/logout").status_code == 303
    assert not r.exists(keys.web_session(sid))
    with Client(app) as thief:  # someone who kept a copy of the cookie
        thief.cookies.set(COOKIE, cookie)
        assert thief.get("/stats").status_code == 401
        answer = thief.post("/queues/default/delete", data={"csrf": token},
                            headers=SAME_ORIGIN, follow_redirects=False)
        assert answer.status_code == 401
    assert r.llen("queue:default") == 1


def test_logout_in_one_process_revokes_in_all(redis_url: str) -> None:
    secret = "s" * 40
    first, second = (create_app(password=PASSWORD, secret_key=secret) for _ in range(2))
    with Client(first) as one, Client(second) as two:
        one.login()
        two.cookies.set(COOKIE, one.cookies[COOKIE])
        assert two.get("/stats").status_code == 200
        one.submit("/logout")
        assert two.get("/stats").status_code == 401


def test_a_changed_password_revokes_every_session(redis_url: str) -> None:
    secret = "s" * 40
    with Client(create_app(password=PASSWORD, secret_key=secret)) as client:
        client.login()
        cookie = client.cookies[COOKIE]
        assert client.get("/stats").status_code == 200
    with Client(create_app(password="a new password", secret_key=secret)) as client:
        client.cookies.set(COOKIE, cookie)
        assert client.get("/stats").status_code == 401
        assert client.login("a new password").status_code == 303
        assert client.get("/stats").status_code == 200


@pytest.mark.parametrize(("age", "accepted"), [
    (-30.0, True),  # issued a little in the future: another server's clock
    (-3600.0, False),  # an hour in the future: would never expire
    (-1e12, False),
    (11 * 3600.0, True),
    (12 * 3600.0 + 5, False),  # older than the session's lifetime
])
def test_issue_time_is_bounded(app: Starlette, client: Client, age: float,
                               accepted: bool) -> None:
    signer = app.state.sidequest.signer
    session = live_session(app, client)
    session.issued = time.time() - age
    with Client(app) as forged:  # signed with the real key, as by someone who knows it
        forged.cookies.set(COOKIE, signer.dumps(session))
        assert forged.get("/stats").status_code == (200 if accepted else 401)


@pytest.mark.parametrize("issued", ["NaN", "Infinity", "-Infinity", '"soon"', "null"])
def test_issue_time_must_be_a_finite_number(app: Starlette, issued: str) -> None:
    signer = app.state.sidequest.signer
    body = base64.urlsafe_b64encode(
        f'{{"csrf":"x","user":"admin","issued":{issued}}}'.encode()).rstrip(b"=").decode()
    assert signer.loads(body + "." + signer._sign(body)) is None


def test_weak_passwords_and_secrets_are_refused(redis_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"SIDEQUEST_WEB_PASSWORD.*7 characters.*at least 8"):
        create_app(password="x" * 7)
    with pytest.raises(ConfigError, match=r"SIDEQUEST_WEB_SECRET.*31 bytes.*at least 32"):
        create_app(password=PASSWORD, secret_key="x" * 31)
    monkeypatch.setenv("SIDEQUEST_WEB_PASSWORD", "a")
    with pytest.raises(ConfigError, match="SIDEQUEST_WEB_PASSWORD"):
        create_app()
    monkeypatch.setenv("SIDEQUEST_WEB_PASSWORD", PASSWORD)
    monkeypatch.setenv("SIDEQUEST_WEB_SECRET", "short")
    with pytest.raises(ConfigError, match=r"SIDEQUEST_WEB_SECRET.*token_urlsafe"):
        create_app()
    monkeypatch.setenv("SIDEQUEST_WEB_SECRET", "x" * 32)
    assert create_app().state.sidequest.auth.has_login_page
    assert not create_app(auth=lambda request: True).state.sidequest.auth.has_login_page
    with pytest.raises(ConfigError, match=r"given auth= and password=.*pass only one"):
        create_app(auth=lambda request: True, password="a")  # one of them would be ignored


def test_sidequest_web_refuses_a_weak_password(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDEQUEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "sidequest", "web", "--port", "1"],
        env={**env, "SIDEQUEST_REDIS_URL": redis_url, "SIDEQUEST_WEB_PASSWORD": "hunter2"},
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert "SIDEQUEST_WEB_PASSWORD" in result.stderr and "at least 8" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_login_page_sends_a_logged_in_user_on(client: Client) -> None:
    """No form for who is logged in already: straight to where ``next`` points, or the
    overview."""
    answer = client.get("/login?next=/retries", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/retries"
    assert client.get("/login", follow_redirects=False).headers["location"] == "/"
    assert client.submit("/logout").status_code == 303
    assert client.get("/login", follow_redirects=False).status_code == 200  # the form again
