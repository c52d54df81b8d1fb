"""The Queues tab marks a queue holding jobs that no running process fetches from, as
``sidequest status`` names them ("No running process serves: exports (10)"): none of the
processes has it among its queues, or only quiet ones do. With shards, each shard's page
reads that shard's processes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from starlette.applications import Starlette

from web_helpers import Client, enqueue, job, process

pytestmark = pytest.mark.redis


def marks(page: str) -> dict[str, str]:
    """Each queue's mark on the Queues page ("" for none), by the queue's link."""
    found = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        link = re.search(r'<a href="[^"]*/queues/([^"]+)">', row)
        if link:
            mark = re.search(r'<span class="badge [^"]*unserved"[^>]*>([^<]+)</span>', row)
            found[link.group(1)] = mark.group(1) if mark else ""
    return found


def test_queues_that_no_running_process_serves_are_marked(client: Client,
                                                          r: redis.Redis) -> None:
    process(r, "w1:1:aaaaaaaaaaaa", queues=["default", "mail"])
    process(r, "w2:2:bbbbbbbbbbbb", queues=["low"])
    r.hset("w2:2:bbbbbbbbbbbb", "quiet", "true")
    process(r, "w3:3:cccccccccccc", queues=["mail"])
    r.hset("w3:3:cccccccccccc", "quiet", "true")  # mail still has a running one
    for name in ("default", "mail", "low", "Exports", "exports"):
        enqueue(r, name, job("a" * 24, queue=name))
    r.sadd("queues", "idle")  # no jobs: nothing waits, so no mark
    assert marks(client.get("/queues").text) == {
        "default": "", "mail": "", "low": "only quiet processes", "idle": "",
        "Exports": "no process serves it", "exports": "no process serves it"}
    # A process whose hash expired is no process.
    r.delete("w1:1:aaaaaaaaaaaa")
    assert marks(client.get("/queues").text)["default"] == "no process serves it"


def test_with_no_process_at_all_every_queue_with_jobs_is_marked(client: Client,
                                                                r: redis.Redis) -> None:
    enqueue(r, "default", job("a" * 24))
    page = client.get("/queues").text
    assert marks(page) == {"default": "no process serves it"}
    assert "start a worker with -q for it" in page


@pytest.fixture
def browser(two_shards: tuple[redis.Redis, redis.Redis], app: Starlette) -> Iterator[Client]:
    with Client(app) as client:
        assert client.login().status_code == 303
        yield client


def test_each_shard_is_marked_by_its_own_processes(
        two_shards: tuple[redis.Redis, redis.Redis], browser: Client) -> None:
    first, other = two_shards
    process(first, "w1:1:aaaaaaaaaaaa", queues=["default", "exports"])
    process(other, "w2:2:bbbbbbbbbbbb", queues=["reports"])
    enqueue(first, "default", job("a" * 24))
    enqueue(other, "reports", job("b" * 24, queue="reports"))
    enqueue(other, "exports", *(job(f"{i:024x}", queue="exports") for i in range(10)))
    assert marks(browser.get("/queues").text) == {"default": ""}
    # w1 lists exports, but it runs on the default shard's Redis: it fetches nothing here.
    assert marks(browser.get("/shards/reports/queues").text) == {
        "reports": "", "exports": "no process serves it"}
