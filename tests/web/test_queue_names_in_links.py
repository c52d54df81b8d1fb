"""Every queue the Queues page lists can be opened and deleted from its links, whatever its
name: one with a line break (a Ruby client takes it) got 404 on both, as did one over 512
characters; ``.`` and ``..`` were links a browser resolves to another page."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import pytest
import redis

from web_helpers import Client, enqueue, job

pytestmark = pytest.mark.redis

NAMES = ["a\nb", "..", ".", "q" * 600]


def as_a_browser_reads(href: str) -> str:
    """The path a browser requests for ``href`` on the Queues page (dot segments resolved)."""
    return urlsplit(urljoin("http://testserver/queues", html.unescape(href))).path


@pytest.mark.parametrize("name", NAMES, ids=["line-break", "dot-dot", "dot", "long"])
def test_a_listed_queue_opens_and_deletes_from_its_links(client: Client, r: redis.Redis,
                                                         name: str) -> None:
    enqueue(r, name, job("a" * 24, queue=name))
    page = client.get("/queues").text
    row = next(row for row in page.split("<tr")[1:] if html.escape(name) in row)
    link = as_a_browser_reads(re.search(r'href="([^"]+)"', row).group(1))
    action = as_a_browser_reads(re.search(r'action="([^"]+)"', row).group(1))
    opened = client.get(link)
    assert opened.status_code == 200 and html.escape(f"Queue {name}")[:60] in opened.text, link
    answer = client.submit(action)
    assert answer.status_code == 303, (action, answer.text)
    assert not r.exists(f"queue:{name}") and name not in r.smembers("queues")


def test_the_login_page_of_a_dashboard_without_login_says_so(redis_url: str) -> None:
    # It said "This dashboard uses the application's own login.", of one with none at all.
    from sidequest.web import create_app

    with Client(create_app(insecure=True)) as anyone:
        page = anyone.get("/login")
    assert page.status_code == 404 and "asks for no login" in page.text
    assert "application's own login" not in page.text
