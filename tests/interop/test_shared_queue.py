"""A Ruby and a Python worker share one Redis: every job runs exactly once, whether they
drain one queue together or both pollers race to move the same scheduled jobs; a job whose
class only the other side defines is an ordinary failure of whoever fetched it; and a job
in flight in a killed Ruby process is gone (Sidekiq's BasicFetch keeps it only in memory)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

from apps.interop_jobs import Record
from helpers import wait_for
from sidequest import client
from sidequest.api import Queue, RetrySet, SortedEntry

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
    failures = [_failure(raw) for raw in r.zrange("retry", 0, -1) + r.zrange("dead", 0, -1)]
    assert failures == [], failures
    assert r.zcard("schedule") == 0


def _failure(raw: str) -> tuple[Any, ...]:
    """What a failed job's entry says about who failed it and why, for the assertion message."""
    job = json.loads(raw)
    return (job.get("jid"), job.get("error_class"), job.get("error_message"),
            job.get("failed_at"), job.get("retry_count"))


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


# Ruby pushes, to the queue only the Python worker serves, a class Python does not define and
# an ActiveJob job (Rails' wrapper class, as Sidekiq 6 and 7 name it).
PUSH_FOR_PYTHON = """
emit([
  Sidekiq::Client.push("class" => "RubyOnlyRecord", "args" => [1], "queue" => "python"),
  Sidekiq::Client.push("class" => "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
                       "wrapped" => "SendMail", "queue" => "python",
                       "args" => [{"job_class" => "SendMail", "arguments" => [1]}]),
])
"""


def test_a_class_only_the_other_side_defines_is_an_ordinary_failure(
    start_sidekiq: Callable[..., Any], python_worker: Callable[..., Any],
    run_ruby: Callable[..., Any], ledger: Any,
) -> None:
    start_sidekiq()  # serves `default`
    python_worker("-q", "python")
    ruby_only, active_job = run_ruby(PUSH_FOR_PYTHON)
    python_only = client.push({"class": "PythonOnlyRecord", "args": [2], "queue": "default"})
    assert python_only is not None
    retries = RetrySet()

    def failed(jid: str) -> SortedEntry:
        return wait_for(lambda: retries.find_job(jid), what=f"{jid} in `retry`")

    # Python fetched the Ruby classes: both fail with UnknownJobError and will be retried.
    for jid, shown in ((ruby_only, "RubyOnlyRecord"), (active_job, "SendMail")):
        entry = failed(jid)
        assert (entry.klass, entry.queue, entry.retry_count) == (shown, "python", 0)
        assert entry.error_class == "sidequest.errors.UnknownJobError"
    # Ruby fetched the Python class: a NameError, retried by Sidekiq's rules too.
    entry = failed(python_only)
    assert (entry.klass, entry.queue, entry.retry_count) == ("PythonOnlyRecord", "default", 0)
    assert entry.error_class == "NameError" and "PythonOnlyRecord" in (entry.error_message or "")
    assert retries.size == 3 and ledger.done() == {}


PUSH_BLOCK = 'emit(Sidekiq::Client.push("class" => "InteropBlock", "args" => []))'


def _keys_holding(r: redis.Redis, needle: str) -> list[str]:
    """Every key of the database whose members, elements or values mention ``needle``."""
    readers = {"string": lambda k: [r.get(k)], "list": lambda k: r.lrange(k, 0, -1),
               "set": r.smembers, "zset": lambda k: r.zrange(k, 0, -1), "hash": r.hvals}
    return sorted(key for key in r.scan_iter()
                  if any(needle in (value or "") for value in readers[r.type(key)](key)))


def test_a_ruby_job_in_flight_is_lost_when_sidekiq_is_killed(
    start_sidekiq: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    sidekiq = start_sidekiq()
    jid = run_ruby(PUSH_BLOCK)
    work_key = f"{sidekiq.identity}:workers"
    wait_for(lambda: any(jid in value for value in r.hvals(work_key)), timeout=15,
             what="a beat listing the running job")
    sidekiq.proc.kill()
    assert sidekiq.wait_exit() == -9
    # BasicFetch popped it with BRPOP: no queue, set or in-progress list holds it, only the
    # dead process's work hash, which is for display and expires within a minute.
    assert _keys_holding(r, jid) == [work_key] and 0 < r.ttl(work_key) <= 60
    assert Queue("default").size == 0 and jid not in ledger.done()
