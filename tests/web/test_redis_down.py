"""``sidequest web`` while Redis is down: a page that says so (where it looked, without the
password), one log line rather than a traceback per request, and the dashboard back by
itself when Redis returns. Also: an unexpected error still gets the security headers."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.requests import Request
from starlette.responses import Response

from helpers import wait_for
from redis_server import RedisServer, free_port
from serving_helpers import answers, env_for, get, serve, stop
from sidequest.errors import RedisUnavailable
from sidequest.web import create_app
from web_helpers import PASSWORD, Client

pytestmark = pytest.mark.redis


@pytest.fixture
def own_redis(tmp_path: Path, redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and start (redis_server: skip/fail like the rest)."""
    server = RedisServer(shutil.which("redis-server") or "redis-server", tmp_path)
    server.start()
    yield server
    server.stop()


def test_pages_say_redis_is_unreachable_and_recover(own_redis: RedisServer) -> None:
    port = free_port()
    url = own_redis.url.replace("redis://", "redis://:hunter2hunter2@")
    own_redis.client().config_set("requirepass", "hunter2hunter2")
    proc = serve(["web", "--port", str(port)], env_for(url))
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/"), 20, "the dashboard")
        own_redis.stop()
        for path in ("/", "/queues", "/retries", "/busy"):
            status, body = get(f"http://127.0.0.1:{port}{path}")
            assert status == 503, (path, body[:300])
            assert "Redis is unreachable" in body
            assert "refused." in body and ".." not in body  # one period, not two
            assert f"127.0.0.1:{own_redis.port}" in body and "hunter2" not in body
        # The poll may answer from its one-second cache (the dashboard page filled it) first.
        wait_for(lambda: get(f"http://127.0.0.1:{port}/stats")[0] == 503, 5,
                 "/stats to say Redis is unreachable")
        own_redis.start()
        own_redis.client().config_set("requirepass", "hunter2hunter2")
        wait_for(lambda: get(f"http://127.0.0.1:{port}/queues")[0] == 200, 20,
                 "the dashboard to recover")
    finally:
        out = stop(proc)
    assert "Traceback" not in out
    assert out.count("is unreachable") == 1, out  # one line for the outage, not per page
    assert "hunter2" not in out


def test_the_outage_page_names_the_settings_file_that_set_the_url(
        own_redis: RedisServer, tmp_path: Path) -> None:
    # The file's redis_url wins over $SIDEQUEST_REDIS_URL: pointing at the variables would
    # send the reader to a setting that changes nothing.
    settings = tmp_path / "sidequest.toml"
    settings.write_text(f'redis_url = "{own_redis.url}"\n')
    port = free_port()
    proc = serve(["web", "--port", str(port), "-C", str(settings)],
                 env_for("redis://127.0.0.1:1/0"))
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/"), 20, "the dashboard")
        own_redis.stop()
        status, body = get(f"http://127.0.0.1:{port}/queues")
    finally:
        stop(proc)
    assert status == 503 and f"127.0.0.1:{own_redis.port}" in body
    assert f"<code>redis_url</code> in <code>{settings}</code>, which wins over" in body
    assert "<code>SIDEQUEST_REDIS_URL</code> or" not in body


def test_a_logged_in_user_sees_the_outage_page_not_the_login_page(
        own_redis: RedisServer) -> None:
    # Whether the login is still live is kept in Redis; not knowing, the dashboard sent a
    # logged-in user to the login page, which then failed too.
    from sidequest import connection

    connection.set_url(own_redis.url)
    try:
        app = create_app(password=PASSWORD, secret_key="s" * 32)
        with Client(app) as client:
            assert client.login().status_code == 303
            assert client.get("/queues").status_code == 200
            own_redis.stop()
            page = client.get("/queues", headers={"Accept": "text/html"},
                              follow_redirects=False)
            assert page.status_code == 503 and "Redis is unreachable" in page.text
            cookie = client.cookies["sidequest_session"]
            login_page = client.get("/login")  # its own page still shows
            assert login_page.status_code == 200
            # ... without replacing the logged-in cookie (and its CSRF token) by a new one.
            assert "set-cookie" not in login_page.headers
            assert client.get("/static/app.css").status_code == 200
            # A logout that cannot end the session says so; it did not look done (a 403 and
            # a logged-out cookie while the session lived on in Redis).
            answer = client.submit("/logout")
            assert answer.status_code == 503 and "you are still logged in" in answer.text
            assert client.cookies["sidequest_session"] == cookie
    finally:
        connection.reset()


def test_a_visitor_not_logged_in_learns_nothing_of_a_redis_failure(
        own_redis: RedisServer) -> None:
    # A Redis that refuses the dashboard's password: the logged-in page names the Redis URL
    # and shows the tabs; before the login, a bare sentence.
    from sidequest import connection

    own_redis.client().config_set("requirepass", "right-password-1")
    connection.set_url(own_redis.url.replace("redis://", "redis://user:wrong-password@"))
    try:
        app = create_app(password=PASSWORD, secret_key="s" * 32)
        with Client(app) as client:
            answer = client.login()
            assert answer.status_code == 500, answer.text
            assert answer.text == "The dashboard cannot use its Redis; its server's log says why."
    finally:
        connection.reset()
        own_redis.client(password="right-password-1").config_set("requirepass", "")


def test_a_refused_redis_password_is_a_setting_to_fix_not_an_outage(
        own_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    # redis-py raises a refused password as a ConnectionError: the page said Redis was
    # unreachable and would be retried, though no wait mends a wrong password.
    from sidequest import connection
    from sidequest.web import errors

    errors._last_misconfigured.clear()  # another test's line for the same problem

    own_redis.client().config_set("requirepass", "right-password-1")
    connection.set_url(own_redis.url.replace("redis://", "redis://:wrong-password@"))
    try:
        app = create_app(auth=lambda request: True, secret_key="s" * 32)
        with Client(app) as client:
            page = client.get("/queues", headers={"Accept": "text/html"})
            assert page.status_code == 500, page.text
            assert "refused the user name or password in the URL" in page.text
            assert "unreachable" not in page.text and "wrong-password" not in page.text
            assert client.get("/queues").status_code == 500
        said = [r for r in caplog.records if "cannot use Redis" in r.getMessage()]
        assert len(said) == 1, "one line for the problem, not one per request"
    finally:
        connection.reset()
        own_redis.client(password="right-password-1").config_set("requirepass", "")


#: Texts of the errors that mean Redis is down, and how the page's sentence should end.
REASONS = [
    (redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
     "Connection refused."),
    (redis.TimeoutError("Timeout reading from socket"), "Timeout reading from socket."),
    (redis.ConnectionError("Error while reading from socket: still waiting... \n"),
     "still waiting."),
    (RedisUnavailable(" . "), "RedisUnavailable."),
    (redis.ConnectionError(), "ConnectionError."),
]


def test_a_login_while_redis_refuses_writes_says_so(own_redis: RedisServer) -> None:
    # A failover waiting for a replica (min-replicas-to-write): Redis answers, so "not
    # answering" sent the operator looking for a server that was up.
    from sidequest import connection

    connection.set_url(own_redis.url)
    own_redis.client().config_set("min-replicas-to-write", 1)  # and there is no replica
    try:
        with Client(create_app(password=PASSWORD, secret_key="s" * 32)) as client:
            answer = client.login()
            assert answer.status_code == 503, answer.text
            assert answer.text.startswith("Redis refuses writes for now"), answer.text
    finally:
        own_redis.client().config_set("min-replicas-to-write", 0)
        connection.reset()


@pytest.mark.parametrize(("error", "ending"), REASONS)
def test_the_unreachable_page_ends_its_sentence_with_one_period(error: Exception,
                                                                ending: str) -> None:
    app = create_app(insecure=True)

    async def down(request: Request) -> Response:
        raise error

    app.router.add_route("/down", down)
    with Client(app) as client:
        answer = client.get("/down")
    assert answer.status_code == 503
    sentence = re.search(r"could not reach Redis at .*?</code>: (.*?)</p>", answer.text, re.S)
    assert sentence is not None, answer.text
    assert sentence.group(1).endswith(ending), sentence.group(1)
    assert ".." not in answer.text


def test_an_unexpected_error_still_carries_the_security_headers() -> None:
    app = create_app(insecure=True)

    async def boom(request: object) -> None:  # a view, called with the request
        raise RuntimeError("a bug in a view")

    app.router.add_route("/boom", boom)
    with Client(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom")
    with Client(app) as client, pytest.raises(RuntimeError, match="a bug in a view"):
        client.get("/boom")  # the error the 500 stands for is the view's own
    assert answer.status_code == 500
    for header in ("content-security-policy", "x-frame-options", "x-content-type-options",
                   "cache-control"):
        assert header in answer.headers, header
    assert "no-store" in answer.headers["cache-control"]
