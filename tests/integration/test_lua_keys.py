"""At run time, every Lua script touches only the keys its caller declared in KEYS.

Redis 7.0 in standalone mode does not enforce declared keys (Redis Cluster and Dragonfly
do), so this watches a real redis-server with MONITOR while the scheduler, fetcher, requeue,
putback, the API's moves and the dashboard totals run, and compares every command a script
ran with the keys of the EVALSHA that ran it. tests/unit/test_lua_keys.py reads the sources.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

from helpers import FAST
from sidequest import client, connection, keys
from sidequest.api import RetrySet, ScheduledSet
from sidequest.api.stats import Totals
from sidequest.config import build
from sidequest.payload import dumps
from sidequest.worker.fetch import Fetcher
from sidequest.worker.inprogress import InProgress
from sidequest.worker.processor import Processor
from sidequest.worker.requeue import requeue_list
from sidequest.worker.scheduler import Scheduler
from sidequest.worker.state import ProcessState

SCRIPTS = ("enqueue_due", "fetch", "move", "putback", "requeue", "totals")
#: Which arguments of a command are keys (LMOVE has two); every other command used has one.
TWO_KEYS = {"LMOVE"}
STOP = "sq-test-monitor-stop"


class Watcher:
    """Records every command Redis runs, from MONITOR, until ``stop``."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.commands: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "MONITOR did not start"

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                if STOP in command["command"]:
                    return
                self.commands.append(command)

    def stop(self) -> list[dict[str, Any]]:
        self.client.echo(STOP)  # a separate connection of the same pool
        self._thread.join(10)
        assert not self._thread.is_alive(), "MONITOR did not stop"
        self.client.close()
        return self.commands


def exercise(config: Any, identity: str, r: redis.Redis) -> None:
    raw = connection.client()
    past = time.time() - 1
    client.push({"class": "Due", "args": ["é"], "queue": "due", "at": past})
    raw.zadd(keys.SCHEDULE, {dumps({"class": "Bare", "args": []}): past})  # no queue
    Scheduler(config, raw, threading.Event()).enqueue_due()
    fetcher = Fetcher(config, identity, raw)
    works = fetcher.fetch(10, [])
    assert {w.queue for w in works} == {"due", "default"}
    processor = Processor(config, identity, raw, ProcessState(), threading.Event())
    InProgress(config, identity, raw, processor).requeue(works[:1])
    works = fetcher.fetch(10, [works[1].raw])
    requeue_list(raw, identity, "stop", max_deaths=3, deaths_ttl=60)
    fetcher.fetch(10, [])
    requeue_list(raw, identity, "reap", max_deaths=3, deaths_ttl=60)  # no lease: reaped
    client.push({"class": "Later", "args": [], "queue": "later", "at": time.time() + 600})
    entry = next(iter(ScheduledSet()))
    assert entry.add_to_queue()
    raw.zadd(keys.RETRY, {dumps({"class": "Failed", "args": [], "queue": "q"}): past})
    assert next(iter(RetrySet())).kill()
    r.hset("host:1:abc", "busy", 2)
    r.sadd(keys.PROCESSES, "host:1:abc")
    assert Totals.read().busy == 2


def test_every_script_touches_only_its_declared_keys(redis_url: str, r: redis.Redis) -> None:
    config = build(**FAST, queues=[("due", 1), ("default", 1), ("later", 1)])
    names = {connection.script(name).sha: name for name in SCRIPTS}
    watcher = Watcher(redis_url)
    exercise(config, "host:2:def", r)
    commands = watcher.stop()
    declared: list[str] | None = None
    ran: set[str] = set()
    touched = 0
    for command in commands:
        words = command["command"].split(" ")
        if command["client_type"] != "lua":
            if words[0].upper() == "EVALSHA":
                # Keys come before any argument, so spaces in payloads do not matter here.
                declared = words[3 : 3 + int(words[2])]
                ran.add(names.get(words[1], words[1]))
            continue
        assert declared is not None, f"a script command before any EVALSHA: {words}"
        for key in words[1 : 3 if words[0].upper() in TWO_KEYS else 2]:
            assert key in declared, f"{words[0]} {key} is not among the declared {declared}"
            touched += 1
    assert set(SCRIPTS) <= ran, f"not exercised: {set(SCRIPTS) - ran}"
    assert touched > 20
