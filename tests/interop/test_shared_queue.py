"""A Ruby and a Python worker share one Redis: every job runs exactly once, whether they
drain one queue together or both pollers race to move the same scheduled jobs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

from apps.interop_jobs import Record
from sidequest import client

HALF = 1000

PUSH_BULK = """
jids = Sidekiq::Client.push_bulk("class" => "InteropRecord", "args" => INPUT)
emit(jids)
"""


def test_ruby_and_python_workers_share_one_queue(
    start_sidekiq: Callable[..., Any], python_worker: Callable[..., Any],
    run_ruby: Callable[..., Any], r: redis.Redis, ledger: Any,
) -> None:
    sidekiq = start_sidekiq()
    python = python_worker()
    from_ruby = [[i, "from ruby"] for i in range(HALF)]
    from_python = [[i, "from python", {"i": i}] for i in range(HALF)]
    ruby_jids = run_ruby(PUSH_BULK, from_ruby)
    python_jids = [str(jid) for jid in Record.perform_bulk(from_python)]
    expected = dict(zip(ruby_jids, from_ruby, strict=True))
    expected.update(zip(python_jids, from_python, strict=True))
    assert len(expected) == 2 * HALF
    ledger.wait_done(expected, timeout=90)
    # Stop both before the final count, so a late duplicate would be seen too.
    assert python.stop() == 0, python.log_tail()
    assert sidekiq.stop() == 0, sidekiq.log_tail()
    assert not {python.identity, sidekiq.identity} & r.smembers("processes")
    assert ledger.done() == dict.fromkeys(expected, 1)
    runners = Counter(ledger.r.hvals("runner"))
    assert set(runners) == {"ruby", "python"} and sum(runners.values()) == 2 * HALF, runners
    for runner in ("ruby", "python"):
        mine = [jid for jid, who in ledger.r.hgetall("runner").items() if who == runner]
        ledger.check({jid: expected[jid] for jid in mine}, runner)
    assert r.llen("queue:default") == 0
    assert (r.zcard("retry"), r.zcard("dead"), r.zcard("schedule")) == (0, 0, 0)


SCHEDULE_BULK = """
jids = Sidekiq::Client.push_bulk("class" => "InteropRecord", "args" => INPUT["args"],
                                 "at" => INPUT["at"])
emit(jids)
"""


def test_both_pollers_move_each_scheduled_job_once(
    start_sidekiq: Callable[..., Any], python_worker: Callable[..., Any],
    run_ruby: Callable[..., Any], r: redis.Redis, ledger: Any,
) -> None:
    start_sidekiq()
    python_worker()
    count = 200
    due = time.time() + 1.5  # both pollers race for the same members once this passes
    from_ruby = [[i, "scheduled by ruby"] for i in range(count)]
    from_python = [[i, "scheduled by python"] for i in range(count)]
    ruby_jids = run_ruby(SCHEDULE_BULK, {"args": from_ruby, "at": due})
    python_jids = client.push_many(
        [{"class": "InteropRecord", "args": args, "at": due} for args in from_python])
    assert r.zcard("schedule") == 2 * count  # nothing was due yet
    expected = dict(zip(ruby_jids, from_ruby, strict=True))
    expected.update(zip([str(j) for j in python_jids], from_python, strict=True))
    ledger.wait_done(expected, timeout=60)
    assert ledger.done() == dict.fromkeys(expected, 1)
    assert r.zcard("schedule") == 0 and r.llen("queue:default") == 0
