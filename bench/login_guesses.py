#!/usr/bin/env python3
"""Password guessing against the dashboard's login limiter, with its default settings: how
many guesses are checked when ten loopback addresses guess at once, each request with a
forged X-Forwarded-For, and how long the right password then takes from a clean address and
from one of the guessing addresses.

    .venv/bin/python bench/login_guesses.py                  # 20 s of guessing
    .venv/bin/python bench/login_guesses.py --seconds 5

A private redis-server is started on a free loopback port and stopped at the end; the
dashboard is a real uvicorn server (sidequest web's settings: no forwarded header believed).
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sidequest  # noqa: E402
from bench.harness import PrivateRedis  # noqa: E402
from sidequest.web import create_app  # noqa: E402
from sidequest.web.server import BackgroundServer  # noqa: E402

PASSWORD = "the right password"
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 12)]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def attempt(port: int, source: str, password: str, forged: str) -> int:
    """One login as a browser makes it (the form, then the POST); the POST's status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120,
                                            source_address=(source, 0))
    try:
        connection.request("GET", "/login")
        page = connection.getresponse()
        cookie: SimpleCookie = SimpleCookie(page.getheader("set-cookie"))
        token = CSRF.search(page.read().decode())
        assert token is not None
        body = urlencode({"csrf": token.group(1), "password": password, "next": "/"})
        connection.request("POST", "/login", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Sec-Fetch-Site": "same-origin", "X-Forwarded-For": forged,
            "Cookie": "; ".join(f"{k}={v.value}" for k, v in cookie.items())})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def guess(port: int, source: str, until: float, results: Counter[int],
          lock: threading.Lock) -> None:
    n = 0
    while time.monotonic() < until:
        n += 1
        status = attempt(port, source, f"guess {n}", f"198.51.{n % 250}.{n % 199}")
        with lock:
            results[status] += 1


def timed(port: int, source: str) -> tuple[int, float]:
    started = time.monotonic()
    status = attempt(port, source, PASSWORD, "198.51.100.1")
    return status, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to guess")
    args = parser.parse_args(argv)
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is missing: sudo apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="sidequest-login-bench-") as directory:
        redis_server = PrivateRedis(executable, Path(directory))
        redis_server.start()
        server = None
        try:
            sidequest.configure(redis_url=redis_server.url())
            server = BackgroundServer(create_app(password=PASSWORD)).start()
            results: Counter[int] = Counter()
            lock = threading.Lock()
            until = time.monotonic() + args.seconds
            threads = [threading.Thread(target=guess, args=(server.port, a, until, results, lock))
                       for a in ADDRESSES for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            other = sum(results.values()) - results[401] - results[429]
            print(f"{len(ADDRESSES)} addresses x 2 connections, forged X-Forwarded-For,"
                  f" {args.seconds:.0f} s: {results[401]} guesses checked (401),"
                  f" {results[429]} refused unchecked (429), other {other}")
            status, seconds = timed(server.port, "127.0.0.20")
            print(f"right password from a clean address: {status} after {seconds:.2f} s")
            status, seconds = timed(server.port, ADDRESSES[0])
            print(f"right password from a guessing address: {status} after {seconds:.2f} s")
        finally:
            if server is not None:
                server.stop()
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
