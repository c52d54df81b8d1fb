"""Serving the dashboard behind a proxy or on an odd address: Secure cookies and HSTS follow
the https setting or a trusted proxy's headers, the Host check parses strictly, and the
Redis password stays off the command line."""

from __future__ import annotations

import http.client
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wait_for
from redis_server import free_port
from serving_helpers import answers, env_for, serve, stop
from sidequest.web import create_app
from sidequest.web.server import BackgroundServer, build_app
from sidequest.web.session import COOKIE
from web_helpers import PASSWORD, Client

pytestmark = pytest.mark.redis


def test_https_setting_marks_the_cookie_secure_and_sends_hsts(redis_url: str) -> None:
    app = create_app(password=PASSWORD, https=True)
    with Client(app) as client:  # plain http from the TLS proxy to the dashboard
        page = client.get("/login")
        assert "; secure" in page.headers["set-cookie"].lower()
        assert page.headers["strict-transport-security"] == "max-age=31536000"
    with Client(app, base_url="https://dash.example") as client:
        assert client.login().status_code == 303
        for path in ("/", "/stats", "/static/app.css"):
            assert "strict-transport-security" in client.get(path).headers, path
    with Client(create_app(password=PASSWORD)) as client:
        page = client.get("/login")
        assert "secure" not in page.headers["set-cookie"].lower()
        assert "strict-transport-security" not in page.headers


def get_from(port: int, source: str, headers: dict[str, str], host: str = "127.0.0.1",
             path: str = "/login") -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(host, port, timeout=30,
                                            source_address=(source, 0))
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer


@pytest.mark.parametrize(("trusted", "source", "secure"), [
    ("127.0.0.2", "127.0.0.2", True),  # the TLS proxy, on "another host"
    ("127.0.0.2", "127.0.0.3", False),  # anyone else claiming https
    (None, "127.0.0.1", False),  # by default nobody is believed, the local host neither
])
def test_secure_follows_the_forwarded_proto_of_a_trusted_proxy(
        redis_url: str, trusted: str | None, source: str, secure: bool) -> None:
    app = create_app(password=PASSWORD)
    server = BackgroundServer(app, forwarded_allow_ips=trusted).start()
    try:
        answer = get_from(server.port, source, {"X-Forwarded-Proto": "https"})
    finally:
        server.stop()
    assert answer.status == 200
    cookie = answer.getheader("set-cookie") or ""
    assert COOKIE in cookie and ("; secure" in cookie.lower()) == secure


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:7433", 200),
    ("LOCALHOST", 200),
    ("[::1]:7433", 200),
    ("127.0.0.1:7433@evil.example", 400),
    ("127.0.0.1@evil.example", 400),
    ("127.0.0.1.evil.example", 400),
    ("127.0.0.1:7433:80", 400),
    ("127.0.0.1:port", 400),
    ("127.0.0.1 evil.example", 400),
    ("[::1]evil.example", 400),
    ("evil.example#127.0.0.1", 400),
    ("", 400),
])
def test_the_host_header_is_parsed_strictly(redis_url: str, host: str, status: int) -> None:
    app = build_app("127.0.0.1")
    with Client(app) as client:
        assert client.get("/stats", headers={"host": host}).status_code == status, host


def test_a_loopback_address_of_its_own_answers_its_host(redis_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIDEQUEST_WEB_PASSWORD", raising=False)
    server = BackgroundServer(build_app("127.0.0.2"), host="127.0.0.2").start()
    try:
        own = get_from(server.port, "127.0.0.2", {"Host": f"127.0.0.2:{server.port}"},
                       host="127.0.0.2", path="/stats")
        other = get_from(server.port, "127.0.0.2", {"Host": "rebound.example"},
                         host="127.0.0.2", path="/stats")
    finally:
        server.stop()
    assert own.status == 200 and other.status == 400


def test_sidequest_web_https_and_redis_url_file(redis_url: str, tmp_path: Path) -> None:
    url_file = tmp_path / "redis-url"
    url_file.write_text(redis_url + "\n")
    env = env_for("redis://127.0.0.1:1/0", SIDEQUEST_WEB_PASSWORD=PASSWORD)  # not this one
    port = free_port()
    proc = serve(["web", "--port", str(port), "--https", "--redis-url-file", str(url_file)],
                 env)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/login"), 20, "sidequest web")
        page = get_from(port, "127.0.0.1", {})
        with Client(create_app(password=PASSWORD)) as client:
            client.login()  # proves the file's Redis is the one in use: the login needs it
    finally:
        out = stop(proc)
    assert "; secure" in (page.getheader("set-cookie") or "").lower()
    assert page.getheader("strict-transport-security") == "max-age=31536000"
    assert redis_url.rsplit(":", 1)[0] in out


def run_web(args: list[str], redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sidequest", "web", *args],
                          env=env_for(redis_url), capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_redis_password_on_the_command_line_is_warned_about(redis_url: str,
                                                             tmp_path: Path) -> None:
    # --host 0.0.0.0 without a login: it stops right after reading its flags.
    result = run_web(["--host", "0.0.0.0", "--redis-url", "redis://:s3cret@127.0.0.1:1/0"],
                     redis_url)
    assert result.returncode == 2
    assert "warning" in result.stderr and "SIDEQUEST_REDIS_URL" in result.stderr
    assert "--redis-url-file" in result.stderr and "s3cret" not in result.stderr
    missing = tmp_path / "nope"
    result = run_web(["--redis-url-file", str(missing)], redis_url)
    assert result.returncode == 2 and str(missing) in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "empty").write_text("\n")
    result = run_web(["--redis-url-file", str(tmp_path / "empty")], redis_url)
    assert result.returncode == 2 and "empty" in result.stderr
