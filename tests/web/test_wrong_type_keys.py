"""A Redis key of the wrong type (another program's) reads as empty on every page, searches
and the Batches tab included, as docs/security.md says: never a 500."""

from __future__ import annotations

import pytest
import redis

from web_helpers import Client

pytestmark = pytest.mark.redis

SET_PAGES = {"retry": "/retries", "schedule": "/scheduled", "dead": "/morgue"}


@pytest.mark.parametrize("key", list(SET_PAGES))
def test_a_search_over_a_set_of_the_wrong_type_finds_nothing(client: Client, r: redis.Redis,
                                                              key: str) -> None:
    r.set(key, "x")
    page = client.get(f"{SET_PAGES[key]}?substr=a")
    assert page.status_code == 200 and "No job matches." in page.text
    assert client.get(f"{SET_PAGES[key]}/1.5-abc").status_code == 404
    assert client.get(SET_PAGES[key]).status_code == 200


@pytest.mark.parametrize("path", ["/batches", "/batches?page=2", "/batches?bid=abc"])
def test_batches_of_the_wrong_type_are_no_batches(client: Client, r: redis.Redis,
                                                  path: str) -> None:
    r.set("sq:batches", "x")
    r.set("sq:batch:abc", "x")
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("key", ["queues", "processes"])
def test_the_name_sets_of_the_wrong_type_list_nothing(client: Client, r: redis.Redis,
                                                       key: str) -> None:
    r.set(key, "x")
    failures = {path: code for path in ("/", "/stats", "/queues", "/busy")
                if (code := client.get(path).status_code) != 200}
    assert not failures, failures


def test_a_process_key_of_the_wrong_type_is_no_process(client: Client, r: redis.Redis) -> None:
    r.sadd("processes", "host:1:x")
    r.set("host:1:x", "not a hash")
    r.set("host:1:x:work", "not a hash")
    page = client.get("/busy")
    assert page.status_code == 200 and "host:1:x" not in page.text
