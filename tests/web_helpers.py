"""Helpers for the dashboard tests: a client that posts forms as our pages do, payloads
written raw (as a Ruby or Python worker would), and hostile strings that every page must
print inert."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
#: What a browser sends with a form posted from one of our own pages.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
HTML = {"Accept": "text/html"}


class Client(TestClient):
    """A TestClient that posts forms the way our pages do: same origin, with the CSRF token
    of its session (read from a page, as a browser would)."""

    def token(self, path: str = "/login") -> str:
        found = CSRF.search(self.get(path).text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def submit(self, path: str, data: dict[str, Any] | None = None,
               **kwargs: Any) -> Any:
        fields = {"csrf": self.token(), **(data or {})}
        return self.post(path, data=fields, headers=SAME_ORIGIN, follow_redirects=False,
                         **kwargs)

    def login(self, password: str = PASSWORD) -> Any:
        return self.submit("/login", {"password": password, "next": "/"})



def flash(html: str) -> str:
    found = re.search(r'class="flash"[^>]*>([^<]*)<', html)
    return found.group(1) if found else ""


#: Markup that would run or break out of an attribute if printed raw (reliability.md B9).
HOSTILE = '<script>alert(1)</script>"onmouseover=alert(2) x="</textarea>javascript:alert(3)'
#: Substrings whose presence in a page would mean the hostile text was printed unescaped.
RAW_FORMS = ("<script>alert(1)", '"onmouseover=alert(2)', "</textarea>")


def job(jid: str, klass: str = "app.jobs.Report", queue: str = "default",
        args: list[Any] | None = None, **extra: Any) -> str:
    now = time.time()
    return json.dumps({"class": klass, "args": [7, "x"] if args is None else args, "jid": jid,
                       "queue": queue, "retry": True, "created_at": now, "enqueued_at": now,
                       **extra})


def failed(jid: str, **extra: Any) -> str:
    trace = ["app/jobs.py:10:in `perform'", "lib/worker.py:99:in `run'"]
    blob = base64.b64encode(zlib.compress(json.dumps(trace).encode())).decode()
    fields = {"error_class": "ReportError", "error_message": "the report failed",
              "retry_count": 2, "failed_at": time.time(), "error_backtrace": blob, **extra}
    return job(jid, **fields)


def enqueue(r: redis.Redis, queue: str, *payloads: str) -> None:
    r.sadd("queues", queue)
    r.lpush(f"queue:{queue}", *payloads)


def process(r: redis.Redis, identity: str, tag: str = "shop", busy: int = 0,
            work: dict[str, str] | None = None, **info: Any) -> None:
    """A process record as a heartbeat writes it (and its running jobs)."""
    host, pid, _ = identity.split(":")
    data = {"hostname": host, "pid": int(pid), "tag": tag, "started_at": time.time() - 60,
            "concurrency": 5, "queues": ["default"], "labels": [], "identity": identity, **info}
    r.sadd("processes", identity)
    r.hset(identity, mapping={"info": json.dumps(data), "busy": busy, "beat": time.time(),
                              "quiet": "false", "rss": 51200, "concurrency": 5})
    for tid, payload in (work or {}).items():
        r.hset(f"{identity}:work", tid, json.dumps({"queue": "default", "payload": payload,
                                                    "run_at": int(time.time())}))


def row_key(r: redis.Redis, zset: str, jid: str) -> str:
    """The ``<score>-<jid>`` key the pages use for the entry with this jid."""
    for raw, score in r.zrange(zset, 0, -1, withscores=True):
        if json.loads(raw)["jid"] == jid:
            return f"{score!r}-{jid}"
    raise AssertionError(f"{jid} is not in {zset}")


#: The browser the dashboard tests drive (`make chromium` installs it), and its flags.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def need_browser() -> None:
    """Skip a browser test where Chromium or playwright is missing; on CI, fail instead."""
    missing = []
    if shutil.which(CHROMIUM) is None:
        missing.append(f"Chromium ({CHROMIUM}: apt-get install chromium, or `make chromium`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def browser_tab(app: Any, **options: Any) -> Iterator[Any]:
    """A Chromium tab on ``app``, served in a thread; ``options`` go to the browser context
    (a viewport). The test fails if a page logged a script error."""
    need_browser()
    from playwright.sync_api import sync_playwright

    from sidequest.web.server import BackgroundServer

    live = BackgroundServer(app).start()
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = chromium.new_context(base_url=live.url.rstrip("/"), **options)
            tab = context.new_page()
            tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda exc: problems.append(str(exc)))
            tab.set_default_timeout(15_000)
            try:
                yield tab
            finally:
                chromium.close()
    finally:
        live.stop()
    assert not problems, problems
