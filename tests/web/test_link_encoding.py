"""Links a page builds from its own URL, or from values read from Redis, lead where they say:
a queue or class name with ``?``, ``#``, ``%`` or ``..`` in it stays in the link's path (the
scope's path is decoded, and used to be printed as it was), a jid stays one query value, and a
405 names every method the path takes."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, quote, unquote, urljoin, urlsplit

import pytest
import redis
from starlette.applications import Starlette
from starlette.routing import Mount

from sidequest import Batch, Job
from sidequest.batch import update
from sidequest.web import create_app
from sidequest.web.render import path_url
from web_helpers import HTML, PASSWORD, SAME_ORIGIN, Client, enqueue, job

pytestmark = pytest.mark.redis

#: Queue names a link printed unquoted would lose: a query, a fragment, an escape that is
#: none (``50%``), dot segments a browser resolves away, and a slash. (A name like ``7%41``,
#: which the test client would decode twice, is left to the test of ``path_url``.)
ODD_QUEUES = ["a?b", "50%", "x#y", "../../etc", "a/..", "we/ird"]
HREF = re.compile(r'href="([^"]*)"')


class Step(Job):
    def perform(self) -> None:
        pass


def hrefs(page: str, marker: str) -> list[str]:
    """The page's links that carry ``marker`` (a query parameter only ``page_url`` keeps)."""
    return [html.unescape(href) for href in HREF.findall(page) if marker in html.unescape(href)]


def followed(page_url: str, href: str) -> str:
    """Where a browser goes from ``page_url`` on ``href``: dot segments resolved, the
    fragment dropped. A ``%`` not starting an escape is refused, as a strict server does."""
    assert not re.search(r"%(?![0-9A-Fa-f]{2})", href), f"malformed escape in {href}"
    return urljoin(page_url, href).partition("#")[0]


def assert_leads_to(client: Client, here: str, links: list[str], path: str, shown: str) -> None:
    """Each link resolves to ``path`` (decoded, as the router sees it) and shows ``shown``."""
    for href in links:
        target = followed("http://testserver" + here, href)
        assert unquote(urlsplit(target).path) == path, (href, target)
        answer = client.get(target)
        assert answer.status_code == 200 and shown in answer.text, (href, target)


@pytest.mark.parametrize("name", ODD_QUEUES)
def test_a_queue_pages_links_keep_its_name(client: Client, r: redis.Redis, name: str) -> None:
    enqueue(r, name, *(job(f"{i:024d}", queue=name) for i in range(3)))
    here = f"/queues/{quote(name, safe='')}?count=1&page=2"
    page = client.get(here)
    assert page.status_code == 200
    links = hrefs(page.text, "count=1")
    # Newest first, Oldest first, and the pager's First, Previous, Next and Last.
    assert len(links) == 6, links
    assert_leads_to(client, here, links, f"/queues/{name}",
                    f"Queue <code>{html.escape(name)}</code>")


@pytest.mark.parametrize(("path", "url"), [
    ("/queues/a?b", "/queues/a%3Fb"),
    ("/queues/7%41", "/queues/7%2541"),
    ("/queues/x#y <é>", "/queues/x%23y%20%3C%C3%A9%3E"),
    ("/queues/../../etc", "/queues/..%2F..%2Fetc"),
    ("/queues/a/..", "/queues/a%2F.."),
    ("/queues/./.", "/queues/.%2F."),
    ("/queues/we/ird", "/queues/we/ird"),
    ("/..", "/.."),  # no route has it; the link at least stays absolute
])
def test_path_url_quotes_each_segment_and_keeps_dot_segments(path: str, url: str) -> None:
    assert path_url(path) == url
    assert unquote(url) == path


def test_dot_segments_are_written_as_the_queues_tab_writes_the_name(
        client: Client, r: redis.Redis) -> None:
    enqueue(r, "../../etc", job("a" * 24, queue="../../etc"))
    page = client.get("/queues/..%2F..%2Fetc").text
    assert 'href="/queues/..%2F..%2Fetc?direction=asc"' in page


def test_a_metrics_class_pages_period_links_keep_the_class(client: Client) -> None:
    here = "/metrics/Foo%3Fbar"
    page = client.get(here)
    assert page.status_code == 200
    links = [href for href in hrefs(page.text, "period=") if href.startswith("/metrics/")]
    assert any("period=8h" in href for href in links), links
    assert_leads_to(client, here, links, "/metrics/Foo?bar", "Foo?bar")


def test_links_under_a_mount_keep_the_prefix_and_the_name(redis_url: str,
                                                          r: redis.Redis) -> None:
    enqueue(r, "a?b", job("a" * 24, queue="a?b"))
    outer = Starlette(routes=[Mount("/admin/sq", create_app(password=PASSWORD))])
    with Client(outer) as client:
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/sq/login").text)
        assert found
        client.post("/admin/sq/login", headers=SAME_ORIGIN,
                    data={"csrf": found.group(1), "password": PASSWORD, "next": "/admin/sq/"})
        page = client.get("/admin/sq/queues/a%3Fb", headers=HTML).text
        assert 'href="/admin/sq/queues/a%3Fb?direction=asc"' in page


def test_shard_links_keep_the_queue(two_shards: tuple[redis.Redis, redis.Redis],
                                    app: Starlette) -> None:
    first, _ = two_shards
    enqueue(first, "a?b", job("a" * 24, queue="a?b"))
    with Client(app) as client:
        assert client.login().status_code == 303
        page = client.get("/queues/a%3Fb").text
    assert 'href="/shards/reports/queues/a%3Fb"' in page
    assert 'href="/queues/a%3Fb"' in page


def test_a_failed_jid_is_one_query_value_in_the_batches_links(client: Client) -> None:
    odd = "ab+c&x=1#frag"
    batch = Batch(description="odd jid")
    with batch.jobs():
        assert Step.perform_async()
    update(batch.ancestry, odd, "failure")
    page = client.get("/batches").text
    links = [href for href in hrefs(page, "substr=") if href.startswith(("/retries", "/morgue"))]
    assert len(links) == 2, links
    for href in links:
        target = urlsplit(followed("http://testserver/batches", href))
        assert parse_qs(target.query) == {"substr": [odd]}, href


#: Paths whose Allow once named only the first of their routes, and what they take.
ALLOWED = {
    "/busy": {"GET", "HEAD", "POST"},
    "/periodic": {"GET", "HEAD", "POST"},
    "/login": {"GET", "HEAD", "POST"},
    "/retries": {"GET", "HEAD", "POST"},
    "/retries/1700000000.5-abc": {"GET", "HEAD", "POST"},
    "/queues/default/delete": {"POST"},
    "/queues/default/delete_job": {"POST"},
    # Right before; kept so.
    "/retries/all/delete": {"POST"},
    "/logout": {"POST"},
}


@pytest.fixture
def csrf(client: Client) -> dict[str, str]:
    """Headers that take a PUT past the CSRF check, to the router."""
    return {**SAME_ORIGIN, "X-CSRF-Token": client.token()}


@pytest.mark.parametrize("path", sorted(ALLOWED))
def test_a_405_names_every_method_of_its_path(client: Client, csrf: dict[str, str],
                                              path: str) -> None:
    answer = client.put(path, headers=csrf)
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == ALLOWED[path]
