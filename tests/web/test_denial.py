"""Requests and Redis entries built to stall the dashboard: each is answered while a plain
request from someone else still answers in under 100 ms (a real ``sidequest web``)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import pytest
import redis

from helpers import wait_for
from redis_server import free_port
from serving_helpers import answers, env_for, serve, stop
from web_helpers import PASSWORD

# Timed: run alone in `make test`, since a busy machine alone can slow a plain request.
pytestmark = [pytest.mark.redis, pytest.mark.timed]
#: Slowest a plain request may be answered while the attack runs.
PLAIN_LIMIT = 0.1


@pytest.fixture
def port(redis_url: str) -> Iterator[int]:
    port = free_port()
    proc = serve(["web", "--port", str(port)], env_for(redis_url, SIDEQUEST_WEB_PASSWORD=PASSWORD))
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/login"), 20, "sidequest web")
        yield port
    finally:
        stop(proc)


def plain_latency(port: int) -> float:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/login")
    assert connection.getresponse().status == 200
    connection.close()
    return time.monotonic() - started


def while_attacking(port: int, attack: Callable[[], object]) -> tuple[object, float]:
    """Run ``attack`` in a thread; the slowest plain request meanwhile, and its result."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(attack()))
    thread.start()
    worst = 0.0
    while thread.is_alive():
        worst = max(worst, plain_latency(port))
    thread.join()
    worst = max(worst, plain_latency(port))
    return result[0], worst


def raw_post(port: int, path: str, body_size: int, declare_length: bool = True) -> int:
    """POST ``a&a&...`` of ``body_size`` bytes with a forged Origin; the status answered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Origin: http://127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n")
    head += (f"Content-Length: {body_size}\r\n" if declare_length
             else "Transfer-Encoding: chunked\r\n")
    sock.sendall((head + "\r\n").encode())
    chunk = b"a&" * 32768
    sent = 0
    try:
        while sent < body_size:
            piece = chunk[: body_size - sent]
            if declare_length:
                sock.sendall(piece)
            else:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        if not declare_length:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed early, as it should
    reply = sock.recv(200).decode("latin-1")
    sock.close()
    return int(reply.split()[1])


@pytest.mark.parametrize("declare_length", [True, False])
def test_a_huge_anonymous_form_is_refused_without_stalling_others(
    port: int, declare_length: bool,
) -> None:
    status, worst = while_attacking(
        port, lambda: raw_post(port, "/login", 16 * 1024 * 1024, declare_length))
    assert status == 413
    assert worst < PLAIN_LIMIT, f"a plain request took {worst * 1000:.0f} ms"


def test_a_form_of_too_many_fields_is_refused(port: int) -> None:
    assert raw_post(port, "/login", 6000) == 413  # 3,000 empty fields in 6 KB


def test_a_dead_job_whose_backtrace_inflates_to_gigabytes(port: int, r: redis.Redis) -> None:
    from web_helpers import Client  # noqa: F401 - the login below goes through the real server

    bomb = zlib.compressobj(9)
    packed = bomb.compress(b"[" + b'"x",' * 10) + bomb.compress(b" " * (256 * 1024 * 1024))
    packed += bomb.compress(b'"y"]') + bomb.flush()
    job = {"class": "Bomb", "args": [], "jid": "b" * 24, "queue": "default", "retry": True,
           "error_class": "RuntimeError", "error_message": "boom", "failed_at": time.time(),
           "error_backtrace": base64.b64encode(packed).decode()}
    score = time.time()
    r.zadd("dead", {json.dumps(job): score})
    cookie = login(port)

    def open_job_page() -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", f"/morgue/{score!r}-{'b' * 24}", headers={"Cookie": cookie})
        answer = connection.getresponse()
        body = answer.read().decode()
        assert "too large" in body
        return answer.status

    status, worst = while_attacking(port, open_job_page)
    assert status == 200
    assert worst < PLAIN_LIMIT, f"a plain request took {worst * 1000:.0f} ms"


def login(port: int) -> str:
    """Log in through the real server; the session cookie to send."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/login")
    page = connection.getresponse()
    body = page.read().decode()
    cookie = page.getheader("set-cookie", "").split(";")[0]
    token = body.split('name="csrf" value="')[1].split('"')[0]
    connection.request("POST", "/login", body=f"csrf={token}&password={PASSWORD}",
                       headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}",
                                "Content-Type": "application/x-www-form-urlencoded"})
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 303, answer.status
    return answer.getheader("set-cookie", "").split(";")[0]


def test_a_search_over_huge_entries_never_blocks_redis(r: redis.Redis) -> None:
    from sidequest.api import RetrySet

    # Entries of 4 MB of "a", and a 100-character pattern of "a"s ending in "b": the shape
    # that makes a glob match cost the entry's size times the pattern's, inside Redis.
    for i in range(5):
        r.zadd("retry", {json.dumps({"class": "Big", "args": ["a" * 4_000_000],
                                     "jid": f"{i:024d}"}): i})
    r.zadd("retry", {json.dumps({"class": "Small", "args": ["a" * 99 + "b"],
                                 "jid": "f" * 24}): 10})
    worst = [0.0]
    done = threading.Event()

    def ping() -> None:
        port = r.connection_pool.connection_kwargs["port"]
        with redis.Redis(host="127.0.0.1", port=port) as other:
            while not done.is_set():
                started = time.monotonic()
                other.ping()
                worst[0] = max(worst[0], time.monotonic() - started)

    pinger = threading.Thread(target=ping)
    pinger.start()
    try:
        cursor, found = 0, []
        while True:
            entries, cursor = RetrySet().search("a" * 99 + "b", cursor, budget=0.15)
            found += [e.jid for e in entries]
            if not cursor:
                break
    finally:
        done.set()
        pinger.join()
    assert found == ["f" * 24]
    assert worst[0] < PLAIN_LIMIT, f"Redis answered a PING in {worst[0] * 1000:.0f} ms"
