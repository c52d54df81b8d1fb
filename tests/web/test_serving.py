"""Serving the dashboard: the WSGI bridge, ``sidequest web`` (and its refusal to listen on a
public address without a login), the background server, and ``sidequest dev``."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from helpers import wait_for
from redis_server import free_port
from serving_helpers import answers, env_for, get, serve, stop
from sidequest.errors import ConfigError
from sidequest.web import wsgi_app
from sidequest.web.server import BackgroundServer, build_app, is_loopback
from web_helpers import PASSWORD

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


def call_wsgi(app: Any, path: str, script_name: str = "") -> tuple[str, dict[str, str], str]:
    environ = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": script_name, "PATH_INFO": path,
        "QUERY_STRING": "", "SERVER_NAME": "app.example", "SERVER_PORT": "80",
        "HTTP_HOST": "app.example", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "HTTP_ACCEPT": "text/html",
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, {k.lower(): v for k, v in headers}
        return lambda data: None

    body = b"".join(app(environ, start_response)).decode()
    return answer["status"], answer["headers"], body


def test_wsgi_app_serves_pages_under_a_script_name(redis_url: str) -> None:
    app = wsgi_app(password=PASSWORD)
    status, headers, _ = call_wsgi(app, "/queues", "/admin/sidequest")
    assert status.startswith("303")
    assert headers["location"] == "/admin/sidequest/login?next=/admin/sidequest/queues"
    status, headers, body = call_wsgi(app, "/login", "/admin/sidequest")
    assert status.startswith("200") and 'action="/admin/sidequest/login"' in body
    assert "nonce-" in headers["content-security-policy"]
    assert "path=/admin/sidequest" in headers["set-cookie"].lower()


def test_a_wsgi_response_closed_unread_leaves_no_task_behind(redis_url: str) -> None:
    """A WSGI server closes a response it stops reading (the client hung up); a2wsgi's own
    iterable then left the request's ASGI task waiting for good."""
    app = wsgi_app(password=PASSWORD)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/login", "SERVER_NAME": "app.example",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b"")}
    chunks = app(environ, lambda status, headers, exc_info=None: lambda data: None)
    next(iter(chunks))  # the first chunk only, as a server whose client hangs up
    getattr(chunks, "close", lambda: None)()
    loop = app.bridge.loop
    assert asyncio.run_coroutine_threadsafe(_pending(), loop).result(timeout=10) == 0


def test_an_error_under_wsgi_reaches_the_log(redis_url: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    # An ASGI server logs what the app raises; the WSGI bridge stops listening once the 500
    # is sent, so without a log of our own the traceback went nowhere.
    def broken_check(request: Any) -> bool:
        raise KeyError("the app's session has no user")

    app = wsgi_app(auth=broken_check, login_url="/login")
    status, _, body = call_wsgi(app, "/queues")
    assert status.startswith("500") and body == "Internal server error"
    (record,) = [r for r in caplog.records if r.name == "sidequest.web"]
    assert "GET /queues" in record.getMessage()
    assert record.exc_info is not None and "has no user" in str(record.exc_info[1])


async def _pending() -> int:
    """Tasks of the running loop still pending, but for the one asking."""
    return len(asyncio.all_tasks() - {asyncio.current_task()})


def test_build_app_needs_a_login_off_the_loopback(redis_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIDEQUEST_WEB_PASSWORD", raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    assert build_app("127.0.0.1").state.sidequest.auth.insecure
    assert build_app("127.0.0.1").state.sidequest.allowed_hosts == {"127.0.0.1", "localhost",
                                                                    "::1"}
    with pytest.raises(ConfigError, match="refusing"):
        build_app("0.0.0.0")
    assert build_app("0.0.0.0", insecure=True).state.sidequest.allowed_hosts is None
    monkeypatch.setenv("SIDEQUEST_WEB_PASSWORD", PASSWORD)
    assert build_app("0.0.0.0").state.sidequest.auth.has_login_page


def test_background_server(redis_url: str) -> None:
    server = BackgroundServer(build_app("127.0.0.1")).start()
    try:
        assert server.port > 0
        status, body = get(server.url + "stats")
        assert status == 200 and "processed" in json.loads(body)["sidequest"]
        assert get(server.url + "stats", host="rebound.example")[0] == 400
    finally:
        server.stop()
    assert not server._thread.is_alive()


def test_sidequest_web_refuses_a_public_address_without_a_login(redis_url: str) -> None:
    result = subprocess.run([sys.executable, "-m", "sidequest", "web", "--host", "0.0.0.0"],
                            env=env_for(redis_url), capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert "refusing" in result.stderr and "SIDEQUEST_WEB_PASSWORD" in result.stderr


def test_sidequest_web_with_a_password(redis_url: str) -> None:
    port = free_port()
    proc = serve(["web", "--port", str(port)],
                 env_for(redis_url, SIDEQUEST_WEB_PASSWORD=PASSWORD))
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/login"), 20, "sidequest web")
        assert get(f"http://127.0.0.1:{port}/stats")[0] == 401
        assert get(f"http://127.0.0.1:{port}/login")[0] == 200
    finally:
        out = stop(proc)
    assert f"http://127.0.0.1:{port}/ (password login)" in out
    assert PASSWORD not in out


def line_with(proc: subprocess.Popen[str], lines: list[str], text: str) -> str:
    """The next line of ``proc`` holding ``text``; every line read is kept in ``lines``."""
    def read() -> str | None:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        lines.append(line)
        return line if text in line or not line else None

    return wait_for(read, 30, f"a line of sidequest dev with {text!r}")


def dashboard_url(proc: subprocess.Popen[str], lines: list[str]) -> str:
    found = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+/) \(no login, loopback only\)",
                      line_with(proc, lines, "Dashboard: http"))
    assert found, "".join(lines)
    return found.group(1)


def test_sidequest_dev_serves_the_dashboard(redis_url: str) -> None:
    proc = serve(["dev", "--no-demo-traffic", "--web-port", "0", "-c", "1"], env_for(redis_url))
    lines: list[str] = []
    try:
        status, body = get(dashboard_url(proc, lines) + "stats")
        assert status == 200 and "enqueued" in body
        # Stop a started worker: a Ctrl-C during start-up is test_cli's subject.
        assert " started: " in line_with(proc, lines, " started: "), "".join(lines)
    finally:
        out = "".join(lines) + stop(proc)
    assert "Dashboard:" in out


def test_sidequest_dev_dashboard_reads_the_redis_url_flag_while_the_worker_starts(
    redis_url: str, tmp_path: Path,
) -> None:
    with redis.Redis.from_url(redis_url) as r:
        r.sadd("queues", "seen")
        r.lpush("queue:seen", *[json.dumps({"jid": f"j{n}", "class": "X", "args": []})
                                for n in range(3)])
    # The app takes as long to import as the test lets it: the dashboard is asked meanwhile.
    (tmp_path / "slow_app.py").write_text(
        "import pathlib, time\n"
        f"while not pathlib.Path({str(tmp_path / 'go')!r}).exists():\n"
        "    time.sleep(0.02)\n"
    )
    env = env_for("redis://127.0.0.1:1/0", PYTHONPATH=str(tmp_path))  # nothing listens there
    proc = serve(["dev", "--redis-url", redis_url, "-r", "slow_app", "--web-port", "0",
                  "-c", "1"], env)
    lines: list[str] = []
    try:
        status, body = get(dashboard_url(proc, lines) + "stats")
        assert status == 200, body
        assert json.loads(body)["sidequest"]["enqueued"] == 3
    finally:
        (tmp_path / "go").touch()
        out = "".join(lines) + stop(proc)
    assert f"Redis: {redis_url} (from --redis-url)" in out


def test_sidequest_web_on_a_port_in_use_says_so_first(redis_url: str) -> None:
    """It printed its banner, then uvicorn's bind error, and exited 3."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "sidequest", "web", "--port", str(port)],
                                env=env_for(redis_url), capture_output=True, text=True,
                                timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on http://127.0.0.1:{port}/" in result.stderr
    assert "pick another with --port" in result.stderr and "Ctrl-C" not in result.stdout


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_sidequest_web_refuses_a_port_that_is_none(redis_url: str, port: str) -> None:
    """99999 gave a traceback (OverflowError from bind)."""
    result = subprocess.run([sys.executable, "-m", "sidequest", "web", "--port", port],
                            env=env_for(redis_url), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"'{port}' is no port: give a whole number from 1 to 65535" in result.stderr


def test_sidequest_web_reads_the_workers_config_file(redis_url: str, second_redis: Any,
                                                     tmp_path: Path) -> None:
    # The worker's TOML file names the shards: the dashboard reads the same file, rather
    # than the shard table repeated in the environment.
    config = tmp_path / "sidequest.toml"
    config.write_text(f'redis_url = "{redis_url}"\n'
                      f'[shards]\nreports = "{second_redis.url}"\n'
                      '[shard_queues]\nreports = "reports"\n')
    port = free_port()
    env = env_for("redis://127.0.0.1:1/0", SIDEQUEST_WEB_PASSWORD=PASSWORD)  # the file wins
    proc = serve(["web", "--port", str(port), "-C", str(config)], env)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/login"), 20, "sidequest web")
    finally:
        out = stop(proc)
    assert f"; Redis {redis_url} and shards reports;" in out


def test_sidequest_web_reads_the_default_settings_file(redis_url: str, tmp_path: Path) -> None:
    # The worker reads ./sidequest.toml without -C; the dashboard started beside it too.
    other_db = redis_url.rsplit("/", 1)[0] + "/7"
    (tmp_path / "sidequest.toml").write_text(f'redis_url = "{other_db}"\n')
    port = free_port()
    env = env_for("redis://127.0.0.1:1/0", SIDEQUEST_WEB_PASSWORD=PASSWORD,
                  PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "sidequest", "web", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/login"), 20, "sidequest web")
    finally:
        out = stop(proc)
    assert f"; Redis {other_db};" in out


def test_sidequest_web_names_a_bad_config_file(redis_url: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sidequest", "web", "-C",
                             str(tmp_path / "missing.toml")], capture_output=True, text=True,
                            timeout=30, env=env_for(redis_url), check=False)
    assert result.returncode == 2
    assert "missing.toml does not exist" in result.stderr
