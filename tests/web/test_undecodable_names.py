"""Queue names and process identities that are not UTF-8 (another program wrote them): every
page reads them as unknown text instead of answering 500, and a queue so named is listed,
opened and deleted by its exact bytes."""

from __future__ import annotations

import html
import io
import json
import re
import sys
import time
from collections.abc import Iterator

import pytest
import redis
from starlette.applications import Starlette
from starlette.routing import Mount

from sidequest.web import create_app, wsgi_app
from web_helpers import Client, flash, job

pytestmark = pytest.mark.redis

ODD_QUEUE = b"q\xff\xfe"
ODD_PROCESS = b"host:\xff\xfe:1"
PAGES = ["/", "/stats", "/queues", "/busy", "/retries", "/morgue", "/scheduled"]


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A client in bytes, to write what is not UTF-8."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def odd_process(raw: redis.Redis, identity: bytes = ODD_PROCESS) -> None:
    info = {"hostname": "host", "pid": 1, "started_at": time.time(), "concurrency": 5,
            "queues": ["default"], "tag": "", "labels": []}
    raw.sadd("processes", identity)
    raw.hset(identity, mapping={"info": json.dumps(info), "busy": "2", "beat": time.time(),
                                "quiet": "false", "rss": "1000", "concurrency": "5"})
    raw.hset(identity + b":work", b"t\xff", json.dumps(
        {"queue": "default", "payload": job("w" * 24), "run_at": time.time()}))


@pytest.mark.parametrize("what", ["queue", "process"])
def test_no_page_fails_over_a_name_that_is_not_utf8(client: Client, raw: redis.Redis,
                                                    what: str) -> None:
    if what == "queue":
        raw.sadd("queues", ODD_QUEUE)
        raw.lpush(b"queue:" + ODD_QUEUE, job("a" * 24))
    else:
        odd_process(raw)
    failures = {path: code for path in PAGES if (code := client.get(path).status_code) != 200}
    assert not failures, failures


def test_the_totals_count_what_sits_under_such_names(client: Client, raw: redis.Redis) -> None:
    raw.sadd("queues", ODD_QUEUE)
    raw.lpush(b"queue:" + ODD_QUEUE, job("a" * 24), job("b" * 24))
    odd_process(raw)
    totals = client.get("/stats").json()["sidequest"]
    assert (totals["enqueued"], totals["busy"], totals["processes"]) == (2, 2, 1)


def test_the_busy_page_shows_the_process_and_its_job(client: Client, raw: redis.Redis) -> None:
    odd_process(raw)
    page = client.get("/busy").text
    assert "host:\\xff\\xfe:1" in page and "w" * 24 in page


def test_such_a_queue_is_listed_opened_and_deleted_by_its_exact_name(
    client: Client, raw: redis.Redis,
) -> None:
    # A queue whose shown name is the odd one's, written out: it must not be touched.
    raw.sadd("queues", ODD_QUEUE, b"q\\xff\\xfe")
    raw.lpush(b"queue:" + ODD_QUEUE, job("a" * 24))
    raw.lpush(b"queue:q\\xff\\xfe", job("b" * 24))
    listing = client.get("/queues").text
    assert listing.count("q\\xff\\xfe") >= 2  # shown escaped, both of them
    (link,) = re.findall(r'href="(/queues/q%FF%FE)"', listing)
    opened = client.get(link)
    assert opened.status_code == 200 and "a" * 24 in opened.text and "b" * 24 not in opened.text
    answer = client.submit(link + "/delete")
    assert answer.status_code == 303
    assert raw.smembers("queues") == {b"q\\xff\\xfe"}
    assert not raw.exists(b"queue:" + ODD_QUEUE) and raw.llen(b"queue:q\\xff\\xfe") == 1
    assert "q\\xff\\xfe" in flash(client.get("/queues").text)


def test_a_job_in_such_a_queue_is_deleted_by_its_button(client: Client,
                                                        raw: redis.Redis) -> None:
    raw.sadd("queues", ODD_QUEUE)
    raw.lpush(b"queue:" + ODD_QUEUE, job("a" * 24), job("b" * 24))
    page = client.get("/queues/q%FF%FE").text
    (action,) = set(re.findall(r'action="(/queues/[^"]+/delete_job)"', page))
    refs = re.findall(r'name="job" value="([^"]+)"', page)
    answer = client.submit(action, {"job": refs[0]})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/queues/q%FF%FE")
    assert [json.loads(r)["jid"] for r in raw.lrange(b"queue:" + ODD_QUEUE, 0, -1)] == ["a" * 24]


def test_such_a_queue_opens_under_wsgi_too(redis_url: str, raw: redis.Redis) -> None:
    raw.sadd("queues", ODD_QUEUE)
    raw.lpush(b"queue:" + ODD_QUEUE, job("a" * 24))
    app = wsgi_app(insecure=True)
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None,
                       ) -> object:
        answer["status"] = status
        return lambda data: None

    # A WSGI server hands the path's bytes on as latin-1 text, percent escapes decoded.
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/admin",
               "PATH_INFO": "/queues/q\xff\xfe", "QUERY_STRING": "",
               "SERVER_NAME": "app.example", "SERVER_PORT": "80",
               "HTTP_HOST": "app.example", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
               "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
               "wsgi.multiprocess": False, "wsgi.run_once": False}
    body = b"".join(app(environ, start_response)).decode()
    assert answer["status"].startswith("200") and "a" * 24 in body, body[:500]


def test_such_a_queue_is_deleted_through_a_mount_too(redis_url: str, raw: redis.Redis) -> None:
    raw.sadd("queues", ODD_QUEUE)
    raw.lpush(b"queue:" + ODD_QUEUE, job("a" * 24))
    host = Starlette(routes=[Mount("/admin/jobs", app=create_app(insecure=True))])
    with Client(host) as client:
        listing = client.get("/admin/jobs/queues").text
        (link,) = re.findall(r'href="(/admin/jobs/queues/q%FF%FE)"', listing)
        assert "a" * 24 in client.get(link).text
        token = re.search(r'name="csrf" value="([^"]+)"', listing)
        assert token is not None
        answer = client.post(link + "/delete", data={"csrf": token.group(1)},
                             headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert answer.status_code == 303 and raw.smembers("queues") == set()


def test_the_links_of_such_a_queue_s_page_lead_back_to_it(client: Client,
                                                           raw: redis.Redis) -> None:
    raw.sadd("queues", ODD_QUEUE)
    raw.lpush(b"queue:" + ODD_QUEUE, *(job(f"{n:024d}") for n in range(30)))
    page = client.get("/queues/q%FF%FE").text
    links = set(re.findall(r'href="(/queues/[^"]+)"', html.unescape(page)))
    # Newest first, oldest first, the next page: each to this queue, not to "q\ufffd\ufffd".
    assert links == {"/queues/q%FF%FE", "/queues/q%FF%FE?direction=asc",
                     "/queues/q%FF%FE?page=2"}, links
    for link in links:
        assert f"{0:024d}" in client.get(link).text or f"{29:024d}" in client.get(link).text
