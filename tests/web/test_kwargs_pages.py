"""The dashboard shows a job's keyword arguments next to its args, and on its own page."""

from __future__ import annotations

import html
import time

import pytest
import redis

from web_helpers import Client, enqueue, failed, job, process, row_key

pytestmark = pytest.mark.redis

A, B = "a" * 24, "b" * 24
KWARGS = {"template": "reminder"}
SHOWN = '[42] {"template": "reminder"}'


def test_queue_retries_and_busy_rows_show_kwargs(client: Client, r: redis.Redis) -> None:
    enqueue(r, "default", job(A, args=[42], kwargs=KWARGS), job(B, args=[43]))
    r.zadd("retry", {failed(A, args=[42], kwargs=KWARGS): time.time() + 60})
    process(r, "worker-1:4242:aaaaaaaaaaaa", busy=1,
            work={"t1": job(A, args=[42], kwargs=KWARGS)})
    for path in ("/queues/default", "/retries", "/busy"):
        page = html.unescape(client.get(path).text)
        assert SHOWN in page, path
    queue = html.unescape(client.get("/queues/default").text)
    assert "[43]</code>" in queue  # a job without kwargs shows its args alone


def test_the_job_page_shows_kwargs(client: Client, r: redis.Redis) -> None:
    r.zadd("retry", {failed(A, args=[42], kwargs=KWARGS): time.time() + 60})
    page = html.unescape(client.get(f"/retries/{row_key(r, 'retry', A)}").text)
    assert "<th>kwargs</th>" in page and '"template": "reminder"' in page
