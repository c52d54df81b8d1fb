"""A form posted while Redis is unreachable: the outage page says the action was not done
and, instead of reloading itself (which led to a page that said nothing of the action, or
sent the form's URL again as a GET), goes back to the page the form was on with a GET."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_server import RedisServer
from web_helpers import PASSWORD, SAME_ORIGIN, Client, enqueue, job

pytestmark = pytest.mark.redis

NOT_DONE = "Your action was not done: nothing was changed."


@pytest.fixture
def own_redis(tmp_path: Path, redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop, used by Sidequest (redis_server: skip/fail like
    the rest)."""
    from sidequest import connection

    server = RedisServer(shutil.which("redis-server") or "redis-server", tmp_path)
    server.start()
    connection.set_url(server.url)
    yield server
    connection.reset()
    server.stop()


def post(client: Client, path: str, referer: str | None = None) -> Any:
    """A form of ours posted to ``path`` from the page ``referer``, as a browser sends it."""
    headers = {**SAME_ORIGIN, **({"Referer": referer} if referer else {})}
    return client.post(path, data={"csrf": client.token()}, headers=headers,
                       follow_redirects=False)


def refresh(page: str) -> str:
    """What the page's meta refresh says: "<seconds>" or "<seconds>; url=<where>"."""
    found = re.search(r'<meta http-equiv="refresh" content="([^"]+)">', page)
    assert found, page[:500]
    return html.unescape(found.group(1))


def test_a_form_posted_while_redis_is_down_was_not_done(own_redis: RedisServer) -> None:
    from sidequest.web import create_app

    with Client(create_app(password=PASSWORD, secret_key="s" * 32)) as client:
        assert client.login().status_code == 303
        own_redis.stop()
        answer = post(client, "/retries/all/kill",
                      "http://testserver/retries?page=2&substr=a%20b")
        assert answer.status_code == 503
        assert NOT_DONE in answer.text and "Redis is unreachable" in answer.text
        # Back to the list it was on, with its page and filter, by a GET, given time to read.
        assert refresh(answer.text) == "10; url=/retries?page=2&substr=a%20b"
        assert 'goes back to <a href="/retries?page=2&amp;substr=a%20b">the page' in answer.text
        # Without a Referer of ours: the page of the tab the form posted to.
        for referer in (None, "http://evil.example/retries?page=2", "http://testserver/login"):
            answer = post(client, "/queues/default/delete", referer)
            assert answer.status_code == 503 and NOT_DONE in answer.text
            assert refresh(answer.text) == "10; url=/queues", referer
        # A page asked for with a GET reloads itself, and speaks of no action.
        page = client.get("/retries", headers={"Accept": "text/html"})
        assert page.status_code == 503 and refresh(page.text) == "5"
        assert "not done" not in page.text


def test_a_form_that_reached_its_view_may_say_part_was_done(own_redis: RedisServer) -> None:
    # No login to check in Redis: the view runs, and fails at its first Redis call.
    import redis

    from sidequest.web import create_app

    enqueue(redis.Redis.from_url(own_redis.url), "default", job("a" * 24))
    with Client(create_app(insecure=True)) as client:
        token = client.token("/queues")
        own_redis.stop()
        answer = client.post("/queues/default/delete", data={"csrf": token},
                             headers=SAME_ORIGIN, follow_redirects=False)
    assert answer.status_code == 503
    assert "<strong>Your action was not done</strong>: Redis did not answer it." in answer.text
    assert NOT_DONE not in answer.text  # the view may have begun: no promise of nothing
    assert refresh(answer.text) == "10; url=/queues"


def test_a_form_of_a_shard_that_is_down_goes_back_to_that_shards_page(
        redis_url: str, tmp_path: Path) -> None:
    import sidequest
    from sidequest import connection
    from sidequest.web import create_app

    shard = RedisServer(shutil.which("redis-server") or "redis-server", tmp_path)
    shard.start()
    sidequest.configure(redis_url, shards={"eu": shard.url}, shard_queues={"mail": "eu"})
    try:
        with Client(create_app(password=PASSWORD, secret_key="s" * 32)) as client:
            assert client.login().status_code == 303
            shard.stop()
            answer = client.submit("/shards/eu/retries/all/retry")
            assert answer.status_code == 503 and "Shard eu is unreachable" in answer.text
            assert "<strong>Your action was not done</strong>" in answer.text
            assert refresh(answer.text) == "10; url=/shards/eu/retries"
            answer = post(client, "/shards/eu/morgue/all/delete",
                          "http://testserver/shards/eu/morgue?page=3")
            assert refresh(answer.text) == "10; url=/shards/eu/morgue?page=3"
    finally:
        connection.reset()
        shard.stop()
