"""Failures cross over: a job that failed on one side is read, retried and run by the other.

Python reads and acts on the ``retry`` and ``dead`` sets through ``sidequest.api`` (RetrySet,
DeadSet, SortedEntry), Ruby through ``Sidekiq::RetrySet``/``Sidekiq::DeadSet``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from apps.interop_jobs import Doomed, Flaky
from helpers import wait_for
from sidequest.api import DeadSet, RetrySet, SortedEntry

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


def _found(jobset: RetrySet | DeadSet, jid: str) -> Callable[[], SortedEntry | None]:
    return lambda: jobset.find_job(jid)


def _check_python_error(entry: dict[str, Any], jid: str, message: str) -> None:
    assert entry["error_class"] == "apps.interop_jobs.InteropError"
    assert entry["error_message"] == message.format(jid=jid)
    assert entry["error"] is True
    backtrace = entry["backtrace"]
    assert backtrace and all(isinstance(line, str) for line in backtrace)
    assert "interop_jobs.py" in backtrace[0] and "in `perform'" in backtrace[0]


def test_python_failure_in_ruby_retry_set_and_retry_all_runs_it_in_python(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], ledger: Any
) -> None:
    python_worker()
    started = time.time()
    args = ["héllo", {"n": 2**64 + 1, "f": 0.5}, None]
    jid = Flaky.perform_async(*args)
    wait_for(_found(RetrySet(), jid), what="the Python failure in `retry`")
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
    assert ledger.attempts(jid) == 2 and RetrySet().size == 0


def test_ruby_failure_read_and_retried_by_python_runs_in_ruby(
    sidekiq_process: Any, run_ruby: Callable[..., Any], ledger: Any
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
    retries = RetrySet()
    entry = wait_for(_found(retries, jid), what="the Ruby failure in `retry`")
    assert retries.size == 1 and entry.item["class"] == "InteropFlaky"
    assert (entry.klass, entry.jid, entry.args, entry.queue) == ("InteropFlaky", jid, args,
                                                                 "default")
    assert entry.error_class == "InteropError"
    assert entry.error_message == f"first attempt of {jid} fails on purpose"
    assert entry.retry_count == 0 and entry.retried_at is None
    assert started <= (entry.failed_at or 0) < entry.score  # the retry is in the future
    assert "\n" in entry.item["error_backtrace"]  # 6.4 writes Base64 with line breaks
    backtrace = entry.error_backtrace
    assert "jobs.rb" in backtrace[0] and "perform" in backtrace[0]
    # "Retry now" from Python, as Sidekiq's API and UI do it: off the set, retry_count one
    # lower (so this manual try is not counted), onto its queue, where Ruby runs it.
    assert entry.retry()
    assert not entry.retry()  # it is gone: a second click does nothing
    ledger.wait_done([jid])
    ledger.check({jid: args}, runner="ruby")
    assert ledger.attempts(jid) == 2 and retries.size == 0 and DeadSet().size == 0


def test_python_job_that_exhausts_its_retries_is_in_ruby_dead_set(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], ledger: Any
) -> None:
    python_worker()
    jid = Doomed.set(retry=1).perform_async("doomed", 1.5)
    entry = wait_for(_found(RetrySet(), jid), what="the first failure")
    assert entry.retry_count == 0
    # Due now rather than in 15+ s; unlike retry(), add_to_queue() keeps the retry count, so
    # the next failure is the last one allowed.
    assert entry.add_to_queue()
    wait_for(_found(DeadSet(), jid), what="the second failure in `dead`")
    out = run_ruby(READ_SET, {"set": "dead"})
    (entry,) = out["entries"]
    assert (entry["class"], entry["jid"], entry["args"]) == ("InteropDoomed", jid, ["doomed", 1.5])
    _check_python_error(entry, jid, "{jid} always fails")
    assert entry["retry_count"] == 1
    assert entry["failed_at"] <= entry["retried_at"] <= entry["score"] <= time.time()
    assert RetrySet().size == 0 and DeadSet().size == 1 and ledger.attempts(jid) == 2


def test_ruby_job_that_exhausts_its_retries_reads_in_python_and_retries_from_the_morgue(
    sidekiq_process: Any, run_ruby: Callable[..., Any], ledger: Any
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
    dead = DeadSet()
    entry = wait_for(_found(dead, jid), what="the Ruby job in `dead`")
    assert dead.size == 1 and RetrySet().size == 0 and ledger.attempts(jid) == 1
    assert (entry.klass, entry.jid, entry.args) == ("InteropDoomed", jid, ["doomed", 2**64 + 1])
    assert (entry.item["retry"], entry.retry_count) == (0, 0)
    assert (entry.error_class, entry.error_message) == ("InteropError", f"{jid} always fails")
    assert started <= (entry.failed_at or 0) <= entry.score <= time.time()
    assert entry.retried_at is None and "jobs.rb" in entry.error_backtrace[0]
    # Retry from the morgue in Python: Ruby runs it again, it fails again, and it is back in
    # `dead` with the count Ruby's own "Retry Now" would give (-1 + 1 = 0) and a retried_at.
    assert entry.retry()
    wait_for(lambda: ledger.attempts(jid) == 2, what="Ruby to run it again")
    again = wait_for(_found(dead, jid), what="the second death")
    assert (again.retry_count, again.error_message) == (0, f"{jid} always fails")
    assert entry.score <= (again.retried_at or 0) <= again.score <= time.time()
    assert dead.size == 1 and RetrySet().size == 0 and jid not in ledger.done()
