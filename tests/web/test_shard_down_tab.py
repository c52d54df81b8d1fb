"""The dashboard with shards default, mail (down: nothing listens at its port) and reports:
the overviews of the shards that answer still work and mark mail as unreachable; a page that
needs mail says that mail is down, with its URL but not its password."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

import sidequest
from redis_server import RedisServer, free_port
from sidequest import connection
from sidequest.api.stats import Totals, each_shard
from web_helpers import Client

pytestmark = pytest.mark.redis


@pytest.fixture
def mail_down(redis_url: str, second_redis: RedisServer) -> Iterator[str]:
    """Yields mail's URL as the page should show it (password redacted)."""
    with second_redis.client() as other:
        other.flushall()
    port = free_port()
    sidequest.configure(redis_url, shards={"reports": second_redis.url,
                                           "mail": f"redis://:hunter2hunter2@127.0.0.1:{port}/0"},
                        shard_queues={"reports": "reports", "mail": "mail"})
    yield f"redis://:***@127.0.0.1:{port}/0"
    connection.reset()


@pytest.fixture
def browser(mail_down: str, app: Starlette) -> Iterator[Client]:
    with Client(app) as client:
        assert client.login().status_code == 303
        yield client


@pytest.mark.parametrize("path", ["/", "/shards/reports/"])
def test_the_overview_marks_the_shard_that_is_down(path: str, mail_down: str, r: redis.Redis,
                                                   second_redis: RedisServer,
                                                   browser: Client) -> None:
    r.set("stat:processed", 100)
    second_redis.client().set("stat:processed", 23)
    page = browser.get(path)
    assert page.status_code == 200, page.text[:500]
    rows = dict(re.findall(r'<tr[^>]*>\s*<td><a href="[^"]+">([^<]+)</a></td>(.*?)</tr>',
                           page.text, re.S))
    assert list(rows) == ["default", "mail", "reports"]
    assert f"unreachable at <code>{mail_down}</code>" in rows["mail"]
    assert ">100<" in rows["default"] and ">23<" in rows["reports"]
    # The sum says what it leaves out.
    assert 'data-total="processed">123<' in page.text
    assert "All shards but mail" in page.text
    assert re.search(r"Shard <strong>mail</strong> is unreachable at <code>"
                     + re.escape(mail_down), page.text)
    assert "hunter2" not in page.text


@pytest.mark.parametrize("path", ["/shards/mail/", "/shards/mail/queues"])
def test_a_page_of_the_shard_that_is_down_names_it(path: str, mail_down: str,
                                                   browser: Client) -> None:
    page = browser.get(path)
    assert page.status_code == 503
    assert "Shard mail is unreachable" in page.text
    assert f"Redis of shard <strong>mail</strong> at <code>{mail_down}</code>" in page.text
    assert "The other shards' pages still work." in page.text
    assert "hunter2" not in page.text


def test_a_page_that_reads_every_shard_names_the_one_that_is_down(mail_down: str,
                                                                   app: Starlette) -> None:
    """On reports' pages, a read of all shards fails on mail: the page names mail, not the
    shard of its URL."""
    async def every_shard(request: Request) -> Response:
        return PlainTextResponse(str(await run_in_threadpool(each_shard, Totals.read)))

    app.router.add_route("/every", every_shard)
    with Client(app) as client:
        assert client.login().status_code == 303
        page = client.get("/shards/reports/every")
    assert page.status_code == 503
    assert f"shard <strong>mail</strong> at <code>{mail_down}</code>" in page.text
    assert "Connection refused." in page.text and ".." not in page.text
