"""The lists that had no pages (Queues, Periodic, the processes on Busy) show one page at a
time: with 100,000 queues or periodic entries (one queue per tenant, or another program's
writes) a page of them was tens of megabytes, drawn while every other request waited."""

from __future__ import annotations

import json
import re

import pytest
import redis

from sidequest import keys
from web_helpers import Client, process

pytestmark = pytest.mark.redis


def rows(page: str, table: str) -> int:
    body = re.search(rf'<table class="data" id="{table}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, page
    return body.group(1).count("<tr")


def test_queues_come_a_hundred_a_page(client: Client, r: redis.Redis) -> None:
    r.sadd("queues", *[f"tenant-{i:04}" for i in range(250)])
    r.lpush("queue:tenant-0249", "{}")
    first = client.get("/queues").text
    assert rows(first, "queues") == 100 and "Page 1 of 3" in first
    assert "tenant-0000" in first and "tenant-0100" not in first
    last = client.get("/queues?page=3").text
    assert rows(last, "queues") == 50 and "tenant-0249" in last
    assert "no process serves it" in last  # the page's own marks
    assert rows(client.get("/queues?page=99").text, "queues") == 50  # the last page


def test_periodic_entries_come_a_hundred_a_page(client: Client, r: redis.Redis) -> None:
    r.hset(keys.PERIODIC, mapping={
        f"entry-{i:04}": json.dumps({"name": f"entry-{i:04}", "class": "app.jobs.Tick",
                                     "every": 60, "args": [], "queue": "default"})
        for i in range(150)})
    first = client.get("/periodic").text
    assert rows(first, "periodic") == 100 and "Page 1 of 2" in first
    assert ">150<" in first  # the heading counts them all
    second = client.get("/periodic?page=2").text
    assert rows(second, "periodic") == 50 and "entry-0149" in second


def test_processes_come_a_hundred_a_page(client: Client, r: redis.Redis) -> None:
    for i in range(130):
        process(r, f"host{i:03}:{1000 + i}:abcd")
    first = client.get("/busy").text
    assert rows(first, "processes") == 100 and "130 processes" in first
    assert 'process_page=2' in first
    second = client.get("/busy?process_page=2").text
    assert rows(second, "processes") == 30
