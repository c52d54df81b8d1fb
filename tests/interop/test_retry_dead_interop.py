"""Failures cross over: a job that failed on one side is read, retried and run by the other.

Python-side reads go through the raw ``retry``/``dead`` sorted sets with
``sidequest.payload.decode`` and ``sidequest.retry.decode_backtrace``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from apps.interop_jobs import Doomed, Flaky
from helpers import wait_for
from sidequest.payload import decode, dumps, timestamp
from sidequest.retry import decode_backtrace

# Ruby reads a sorted set the way its Web UI and scripts do, then optionally acts on it.
READ_SET = """
set = INPUT["set"] == "dead" ? Sidekiq::DeadSet.new : Sidekiq::RetrySet.new
entries = set.map do |e|
  {"class" => e.klass, "args" => e.args, "jid" => e.jid, "queue" => e.queue,
   "error_class" => e["error_class"], "error_message" => e["error_message"],
   "retry_count" => e["retry_count"], "failed_at" => e["failed_at"],
   "retried_at" => e["retried_at"], "failed_at_time" => Time.at(e["failed_at"]).to_f,
   "backtrace" => e.error_backtrace, "score" => e.score, "error" => e.error?}
end
Sidekiq::RetrySet.new.retry_all if INPUT["retry_all"]
emit("entries" => entries, "size_after" => set.size)
"""


def _check_python_error(entry: dict[str, Any], jid: str, message: str) -> None:
    assert entry["error_class"] == "apps.interop_jobs.InteropError"
    assert entry["error_message"] == message.format(jid=jid)
    assert entry["error"] is True
    backtrace = entry["backtrace"]
    assert backtrace and all(isinstance(line, str) for line in backtrace)
    assert "interop_jobs.py" in backtrace[0] and "in `perform'" in backtrace[0]


def test_python_failure_in_ruby_retry_set_and_retry_all_runs_it_in_python(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    python_worker()
    started = time.time()
    args = ["héllo", {"n": 2**64 + 1, "f": 0.5}, None]
    jid = Flaky.perform_async(*args)
    wait_for(lambda: r.zcard("retry") == 1, what="the Python failure in `retry`")
    out = run_ruby(READ_SET, {"set": "retry", "retry_all": True})
    (entry,) = out["entries"]
    assert (entry["class"], entry["jid"], entry["queue"]) == ("InteropFlaky", jid, "default")
    assert json.dumps(entry["args"]) == json.dumps(args)
    _check_python_error(entry, jid, "first attempt of {jid} fails on purpose")
    assert entry["retry_count"] == 0 and entry["retried_at"] is None
    assert started <= entry["failed_at_time"] <= time.time()
    assert entry["score"] > entry["failed_at"]  # the next retry is in the future
    assert out["size_after"] == 0
    ledger.wait_done([jid])
    ledger.check({jid: args}, runner="python")
    assert ledger.attempts(jid) == 2 and r.zcard("retry") == 0


def test_ruby_failure_read_and_requeued_by_python_runs_in_ruby(
    sidekiq_process: Any, run_ruby: Callable[..., Any], r: redis.Redis, ledger: Any
) -> None:
    started = time.time()
    args = ["wörld", [1, 2.5, 2**62], {"k": None}]
    push = """
class InteropFlaky
  include Sidekiq::Job
  sidekiq_options backtrace: true
end
emit(InteropFlaky.perform_async(*INPUT))
"""
    jid = run_ruby(push, args)
    (member,) = wait_for(lambda: r.zrange("retry", 0, -1), what="the Ruby failure in `retry`")
    job = decode(member)
    assert (job["class"], job["jid"], job["args"]) == ("InteropFlaky", jid, args)
    assert job["error_class"] == "InteropError"
    assert job["error_message"] == f"first attempt of {jid} fails on purpose"
    assert job["retry_count"] == 0 and "retried_at" not in job
    assert started <= (timestamp(job["failed_at"]) or 0) <= time.time()
    assert "\n" in job["error_backtrace"]  # 6.4 writes Base64 with line breaks
    backtrace = decode_backtrace(job["error_backtrace"])
    assert "jobs.rb" in backtrace[0] and "perform" in backtrace[0]
    # Back to its queue from Python, as a "retry now" does; the retry count is kept.
    job["enqueued_at"] = time.time()
    pipe = r.pipeline(transaction=True)
    pipe.zrem("retry", member)
    pipe.lpush("queue:default", dumps(job))
    assert pipe.execute() == [1, 1]
    ledger.wait_done([jid])
    ledger.check({jid: args}, runner="ruby")
    assert ledger.attempts(jid) == 2 and r.zcard("retry") == 0 and r.zcard("dead") == 0


def test_python_job_that_exhausts_its_retries_is_in_ruby_dead_set(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    python_worker()
    jid = Doomed.set(retry=1).perform_async("doomed", 1.5)
    (member,) = wait_for(lambda: r.zrange("retry", 0, -1), what="the first failure")
    r.zadd("retry", {member: time.time()}, xx=True)  # due now rather than in 15+ s
    wait_for(lambda: r.zcard("dead") == 1, what="the second failure in `dead`")
    out = run_ruby(READ_SET, {"set": "dead"})
    (entry,) = out["entries"]
    assert (entry["class"], entry["jid"], entry["args"]) == ("InteropDoomed", jid, ["doomed", 1.5])
    _check_python_error(entry, jid, "{jid} always fails")
    assert entry["retry_count"] == 1
    assert entry["failed_at"] <= entry["retried_at"] <= entry["score"] <= time.time()
    assert r.zcard("retry") == 0 and ledger.attempts(jid) == 2


def test_ruby_job_that_exhausts_its_retries_reads_in_python(
    sidekiq_process: Any, run_ruby: Callable[..., Any], r: redis.Redis, ledger: Any
) -> None:
    started = time.time()
    push = """
class InteropDoomed
  include Sidekiq::Job
  sidekiq_options retry: 0, backtrace: true
end
emit(InteropDoomed.perform_async("doomed", 2**64 + 1))
"""
    jid = run_ruby(push)
    (member, score), = wait_for(lambda: r.zrange("dead", 0, -1, withscores=True),
                                what="the Ruby job in `dead`")
    job = decode(member)
    assert (job["class"], job["jid"], job["args"]) == ("InteropDoomed", jid, ["doomed", 2**64 + 1])
    assert (job["retry"], job["retry_count"]) == (0, 0)
    assert (job["error_class"], job["error_message"]) == ("InteropError", f"{jid} always fails")
    failed_at = timestamp(job["failed_at"]) or 0
    assert started <= failed_at <= score <= time.time()
    assert "jobs.rb" in decode_backtrace(job["error_backtrace"])[0]
    assert r.zcard("retry") == 0 and ledger.attempts(jid) == 1
