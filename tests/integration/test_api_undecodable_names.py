"""Queue names and process identities that are not UTF-8 (another program wrote them) read as
printable text in the API and ``sidequest stats``/``status``, still address their own keys,
and are pruned from ``processes`` like any other (the reaper does not stop on them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helpers import FAST
from sidequest import connection, keys
from sidequest.api import ProcessSet, Queue, Stats, WorkSet, awaiting_recovery
from sidequest.api.queues import summaries
from sidequest.api.stats import Totals, live_stats
from sidequest.config import build
from sidequest.worker.reaper import Reaper

ROOT = Path(__file__).resolve().parents[2]
ODD_QUEUE = b"q\xff\xfe"
ODD_PROCESS = b"host:\xff\xfe:1"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def job(jid: str) -> str:
    return json.dumps({"class": "Odd", "args": [], "jid": jid, "queue": "q",
                       "enqueued_at": time.time() - 5})


def odd_queue(raw: redis.Redis, size: int = 2) -> None:
    raw.sadd("queues", ODD_QUEUE, b"default")
    raw.lpush(b"queue:" + ODD_QUEUE, *(job(f"{n:024d}") for n in range(size)))
    raw.lpush(b"queue:default", job("d" * 24))


def odd_process(raw: redis.Redis, identity: bytes = ODD_PROCESS) -> None:
    raw.sadd("processes", identity)
    raw.hset(identity, mapping={"info": json.dumps({"hostname": "host"}), "busy": "3"})
    raw.hset(identity + b":work", b"t\xff", json.dumps(
        {"queue": "q", "payload": job("w" * 24), "run_at": time.time()}))


def test_stats_and_totals_count_a_queue_and_a_process_so_named(raw: redis.Redis) -> None:
    odd_queue(raw)
    odd_process(raw)
    stats = Stats()
    assert stats.queues == {"q\\xff\\xfe": 2, "default": 1} and stats.enqueued == 3
    assert stats.workers_size == 3
    totals = Totals.read()
    assert (totals.enqueued, totals.busy, totals.processes) == (3, 3, 1)
    assert live_stats().queues == stats.queues


def test_queues_read_and_delete_by_their_exact_name(raw: redis.Redis) -> None:
    odd_queue(raw)
    assert [(s.name, s.size, s.exact) for s in summaries()] == [
        ("default", 1, "default"), ("q\\xff\\xfe", 2, "q\udcff\udcfe")]
    (odd,) = [q for q in Queue.all() if q.name != "default"]
    assert odd.name == "q\\xff\\xfe" and odd.size == 2 and 4 < odd.latency < 60
    first = odd.page()[0]
    assert first.queue_name == "q\\xff\\xfe" and first.delete() and odd.size == 1
    odd.clear()
    assert raw.smembers("queues") == {b"default"} and not raw.exists(b"queue:" + ODD_QUEUE)
    # A name given as text addresses the queue whose name is that text, nothing else.
    assert Queue("q\\xff\\xfe").size == 0


def test_processes_so_named_are_listed_and_signalled_by_their_bytes(raw: redis.Redis) -> None:
    odd_process(raw)
    (process,) = ProcessSet(clean=False)
    assert process.identity == "host:\\xff\\xfe:1" and process.busy == 3
    process.quiet()
    assert raw.lrange(ODD_PROCESS + b"-signals", 0, -1) == [b"TSTP"]
    (work,) = WorkSet()
    assert (work.process, work.tid, work.job.jid) == ("host:\\xff\\xfe:1", "t\\xff", "w" * 24)
    assert len(WorkSet()) == 3 and len(ProcessSet(clean=False)) == 1


def test_cleanup_prunes_such_an_entry_whose_hash_is_gone(raw: redis.Redis) -> None:
    odd_process(raw)
    raw.sadd("processes", b"gone:\xff:2", b"gone:3:x")
    assert ProcessSet.cleanup() == 2
    assert raw.smembers("processes") == {ODD_PROCESS}


def test_the_reaper_does_not_stop_on_such_entries(raw: redis.Redis) -> None:
    raw.sadd("processes", b"gone:\xff:2")
    # A Sidequest process set of another program's making: no lease, so "dead".
    raw.sadd(keys.SQ_PROCESSES, b"dead:\xff:3")
    raw.rpush(b"sq:inprogress:dead:\xff:3", job("i" * 24))
    reaper = Reaper(build(**FAST), "me:1:x", connection.client(), threading.Event())
    assert reaper.reap() == 0
    assert raw.smembers("processes") == set()
    assert awaiting_recovery() == {"dead:\\xff:3": 1}


@pytest.mark.parametrize("command", ["stats", "status"])
def test_the_cli_prints_them(raw: redis.Redis, redis_url: str, command: str) -> None:
    odd_queue(raw)
    odd_process(raw)
    path = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-m", "sidequest", command, "--redis-url", redis_url],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "q\\xff\\xfe" in done.stdout
