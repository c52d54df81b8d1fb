#!/usr/bin/env python3
"""Dashboard pages on big data: how long each page takes with 1,000,000 jobs in a queue and
100,000 each in the retry and dead sets (the S-L5 goal: every page under 300 ms).

    .venv/bin/python bench/web_pages.py                 # the full data set
    .venv/bin/python bench/web_pages.py --quick         # 20,000 / 5,000 / 5,000 (tests)
    .venv/bin/python bench/web_pages.py --redis-url redis://127.0.0.1:6390/0   # FLUSHES it

Without --redis-url a private redis-server is started on a free loopback port and stopped at
the end. The data is pushed raw and pipelined (small valid payloads), then every page is
requested in-process (Starlette's TestClient, logged in) a few times; the report gives the
median and the worst time per page, and the Redis commands one JSON poll costs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sidequest  # noqa: E402
from bench.harness import PrivateRedis  # noqa: E402
from sidequest import metrics  # noqa: E402

QUEUE = "bench"
BATCH = 5_000
REPEATS = 5
LIMIT_MS = 300.0
PASSWORD = "bench-password"
CLASSES = 40


@dataclass(frozen=True)
class Timing:
    path: str
    median_ms: float
    worst_ms: float
    status: int


def payload(i: int, now: float, **extra: object) -> str:
    return json.dumps({"class": f"Bench.Job{i % CLASSES}", "args": [i, "x"], "retry": True,
                       "queue": QUEUE, "jid": f"{i:024x}", "created_at": now,
                       "enqueued_at": now, **extra}, separators=(",", ":"))


def build(client: redis.Redis, queued: int, retries: int, dead: int) -> float:
    """Fill Redis with the data set; returns the seconds it took."""
    started = time.perf_counter()
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.sadd("queues", QUEUE)
    for first in range(0, queued, BATCH):
        last = min(first + BATCH, queued)
        pipe.lpush(f"queue:{QUEUE}", *(payload(i, now) for i in range(first, last)))
        pipe.execute()
    failure = {"error_class": "Bench::Error", "error_message": "it failed", "retry_count": 3,
               "failed_at": now}
    for key, total, offset in (("retry", retries, 10**7), ("dead", dead, 2 * 10**7)):
        for first in range(0, total, BATCH):
            members = {payload(offset + i, now, **failure): now + (i if key == "retry" else -i)
                       for i in range(first, min(first + BATCH, total))}
            pipe.zadd(key, members)
            pipe.execute()
    pipe.zadd("schedule", {payload(3 * 10**7 + i, now): now + 3600 + i for i in range(1000)})
    _processes(pipe, now)
    pipe.execute()
    _metrics(now)
    return time.perf_counter() - started


def _processes(pipe: redis.client.Pipeline, now: float) -> None:
    """Ten worker processes with 25 busy threads each, as heartbeats would write them."""
    for p in range(10):
        identity = f"bench-host:{1000 + p}:{p:012x}"
        info = {"hostname": "bench-host", "pid": 1000 + p, "started_at": now, "tag": "bench",
                "concurrency": 25, "queues": [QUEUE], "labels": [], "identity": identity}
        pipe.sadd("processes", identity)
        pipe.hset(identity, mapping={"info": json.dumps(info), "busy": 25, "beat": now,
                                     "quiet": "false", "rss": 40000, "concurrency": 25})
        work: dict[Any, Any] = {f"t{t}": json.dumps({"queue": QUEUE, "payload": payload(t, now),
                                     "run_at": int(now)}) for t in range(25)}
        pipe.hset(f"{identity}:work", mapping=work)


def _metrics(now: float) -> None:
    """A day of metrics for every class: one run per class every 10 minutes."""
    clock = [now]
    recorder = metrics.Recorder(clock=lambda: clock[0])
    for step in range(144):
        clock[0] = now - step * 600
        for c in range(CLASSES):
            recorder.record(f"Bench.Job{c}", 5.0 + c * 10, failed=step % 10 == 0)
    recorder.flush()


def pages(client: redis.Redis) -> list[str]:
    retry_key = _first_key(client, "retry")
    return [
        "/", "/?days=180", "/stats", "/busy", "/queues",
        f"/queues/{QUEUE}", f"/queues/{QUEUE}?direction=asc",
        f"/queues/{QUEUE}?page=20000", f"/queues/{QUEUE}?page=999999999",
        "/retries", "/retries?page=2000", "/retries?substr=no-such-text",
        "/retries?substr=Job7", f"/retries/{retry_key}",
        "/scheduled", "/morgue", "/morgue?page=3000", "/morgue?substr=no-such-text",
        "/metrics", "/metrics?period=24h", "/metrics/Bench.Job1?period=24h",
    ]


def _first_key(client: redis.Redis, key: str) -> str:
    rows: Any = client.zrange(key, 0, 0, withscores=True)
    raw, score = rows[0]
    return f"{score!r}-{json.loads(raw)['jid']}"


def time_pages(paths: list[str], repeats: int = REPEATS) -> list[Timing]:
    from starlette.testclient import TestClient

    from sidequest.web import create_app

    client = TestClient(create_app(password=PASSWORD), headers={"Sec-Fetch-Site": "same-origin"})
    login = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token, "no CSRF token on the login page"
    client.post("/login", data={"csrf": token.group(1), "password": PASSWORD})
    timings = []
    for path in paths:
        samples, status = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            status = client.get(path).status_code
            samples.append((time.perf_counter() - started) * 1000)
        timings.append(Timing(path, statistics.median(samples), max(samples), status))
    return timings


def poll_commands(client: redis.Redis) -> tuple[int, int]:
    """Commands one uncached JSON poll sends, and commands Redis executes for it (the Lua
    script's reads of each queue and process included; the INFO calls measuring it not)."""
    from sidequest.api.stats import Totals  # what the poll reads

    sent = [0]
    execute = redis.client.Pipeline.execute

    def counting(self: redis.client.Pipeline, raise_on_error: bool = True) -> list[object]:
        sent[0] += len(self.command_stack)
        return execute(self, raise_on_error)

    Totals.read()  # loads the Lua script once
    redis.client.Pipeline.execute = counting  # type: ignore[method-assign]
    try:
        before = int(client.info("stats")["total_commands_processed"])
        Totals.read()
        after = int(client.info("stats")["total_commands_processed"])
    finally:
        redis.client.Pipeline.execute = execute  # type: ignore[method-assign]
    return sent[0], after - before - 1  # the first INFO is counted by the second


@contextmanager
def redis_for(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is missing: sudo apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="sidequest-web-bench-") as directory:
        server = PrivateRedis(executable, Path(directory))
        server.start()
        try:
            yield server.url()
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a small data set, for tests")
    parser.add_argument("--redis-url", help="use this Redis; it is FLUSHED first")
    args = parser.parse_args(argv)
    queued, retries, dead = (20_000, 5_000, 5_000) if args.quick else (1_000_000, 100_000, 100_000)
    with redis_for(args.redis_url) as url:
        sidequest.configure(redis_url=url)
        client = redis.Redis.from_url(url)
        client.flushall()
        seconds = build(client, queued, retries, dead)
        print(f"data: {queued:,} queued, {retries:,} retries, {dead:,} dead, built in"
              f" {seconds:.1f} s; Redis memory {client.info('memory')['used_memory_human']}")
        timings = time_pages(pages(client))
        print(f"{'page':<44} {'median':>9} {'worst':>9}  status")
        for t in timings:
            print(f"{t.path:<44} {t.median_ms:7.1f}ms {t.worst_ms:7.1f}ms  {t.status}")
        slowest = max(timings, key=lambda t: t.median_ms)
        sent, executed = poll_commands(client)
        print(f"slowest median: {slowest.path} {slowest.median_ms:.1f} ms"
              f" (goal < {LIMIT_MS:.0f} ms)")
        print(f"JSON poll: {sent} Redis commands in one round trip ({executed} executed with"
              f" the script's reads of {client.scard('queues')} queue(s) and"
              f" {client.scard('processes')} processes)")
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]},"
              f" Redis {client.info('server')['redis_version']}")
        client.flushall()
        client.close()
        failed = [t for t in timings if t.status != 200]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
