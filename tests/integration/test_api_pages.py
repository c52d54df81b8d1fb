"""The API's cheap reads for pages: counted pages, queue summaries, bounded search, the
summary totals in a fixed number of commands, and Redis facts without secrets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from sidequest.api import Queue, RetrySet
from sidequest.api.queues import summaries
from sidequest.api.stats import REDIS_INFO_FIELDS, Totals, redis_info


def payload(jid: str, queue: str = "default", **extra: Any) -> str:
    return json.dumps({"class": "X", "args": [jid], "jid": jid, "queue": queue, **extra})


def test_counted_pages_read_rows_and_size_together(r: redis.Redis) -> None:
    r.lpush("queue:q", *(payload(str(i), "q") for i in range(25)))
    rows, size = Queue("q").counted_page(2, 10)
    assert size == 25 and [row.jid for row in rows] == [str(i) for i in range(14, 4, -1)]
    rows, size = Queue("q").counted_page(3, 10, oldest_first=True)
    assert size == 25 and [row.jid for row in rows] == [str(i) for i in range(20, 25)]
    assert Queue("q").counted_page(9, 10) == ([], 25)
    r.zadd("retry", {payload(str(i)): i for i in range(12)})
    entries, size = RetrySet().counted_page(2, 5, newest_first=True)
    assert size == 12 and [e.score for e in entries] == [6, 5, 4, 3, 2]


def test_queue_summaries(r: redis.Redis) -> None:
    r.sadd("queues", "a", "b", "empty")
    r.lpush("queue:a", payload("1", "a", enqueued_at=time.time() - 30), payload("2", "a"))
    r.lpush("queue:b", payload("3", "b"))
    found = {s.name: s for s in summaries()}
    assert [s.name for s in summaries()] == ["a", "b", "empty"]
    assert found["a"].size == 2 and 29 <= found["a"].latency < 40
    assert found["empty"].size == 0 and found["empty"].latency == 0.0


def test_search_is_bounded_and_resumable(r: redis.Redis) -> None:
    r.zadd("retry", {payload(f"{i:05d}", error_message="needle" if i % 500 == 0 else "hay"): i
                     for i in range(5000)})
    found: list[str] = []
    cursor, calls = 0, 0
    while True:
        entries, cursor = RetrySet().search("needle", cursor, limit=25, budget=0.0)
        found += [e.jid for e in entries]
        calls += 1
        if not cursor:
            break
    assert sorted(found) == [f"{i:05d}" for i in range(0, 5000, 500)]
    assert calls > 1  # a zero budget stops after each ZSCAN step and hands back a cursor
    entries, cursor = RetrySet().search("hay", 0, limit=3, budget=10.0)
    assert len(entries) >= 3 and cursor != 0  # stopped at the limit, more to come
    # Glob characters are literal (a budget that a loaded machine cannot exhaust).
    assert RetrySet().search("*[?", 0, budget=60.0) == ([], 0)


@contextmanager
def counted_commands() -> Iterator[list[int]]:
    """Commands sent by redis-py (pipelined ones included) while the block runs."""
    counts = [0]
    real_execute = redis.client.Pipeline.execute
    real_command = redis.Redis.execute_command

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts[0] += len(self.command_stack)
        return real_execute(self, *args, **kwargs)

    def command(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts[0] += 1
        return real_command(self, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(redis.client.Pipeline, "execute", execute)
    patch.setattr(redis.Redis, "execute_command", command)
    try:
        yield counts
    finally:
        patch.undo()


def test_totals_cost_the_same_whatever_the_data(r: redis.Redis) -> None:
    Totals.read()  # loads the Lua script once
    with counted_commands() as small:
        empty = Totals.read()
    assert empty.enqueued == 0 and empty.busy == 0
    for q in range(30):
        r.sadd("queues", f"q{q}")
        if q:
            r.lpush(f"queue:q{q}", *(payload(str(i)) for i in range(q)))
    for p in range(20):
        r.sadd("processes", f"h:{p}:x")
        r.hset(f"h:{p}:x", mapping={"busy": p % 3, "info": "{}"})
    r.set("h:bad:x", "not a hash")
    r.sadd("processes", "h:bad:x")  # a key of the wrong type counts 0, not an error
    r.zadd("retry", {payload("r"): 1})
    r.set("stat:processed", 5)
    with counted_commands() as big:
        totals = Totals.read()
    # Two round trips: the counters and the names (queues, processes, and which processes
    # are Sidequest's), then one script over the named keys.
    assert big[0] == small[0] and 10 <= small[0] <= 11
    assert totals.enqueued == sum(range(30)) and totals.busy == sum(p % 3 for p in range(20))
    # Processes with a readable hash: the one of the wrong type is none.
    assert (totals.processed, totals.retries, totals.processes) == (5, 1, 20)
    assert totals.as_dict()["enqueued"] == totals.enqueued


def test_redis_info_has_only_the_listed_fields(r: redis.Redis) -> None:
    info = redis_info()
    assert set(info) == set(REDIS_INFO_FIELDS)
    assert info["redis_version"] == r.info("server")["redis_version"]
