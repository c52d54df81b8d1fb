"""The session cookie and its life: malformed cookies are no session, logout and a changed
password revoke, the issue time is bounded, and weak passwords and secrets are refused."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from sidequest.web.session import COOKIE
from web_helpers import Client

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
