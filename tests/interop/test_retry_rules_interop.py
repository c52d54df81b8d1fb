"""Retry rules across the two: error text Ruby can re-serialise, and Sidekiq 7.2+'s
``retry_for`` window honoured for Ruby-pushed jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from apps.interop_jobs import BadName
from helpers import wait_for
from sidequest.api import DeadSet, RetrySet

# What Sidekiq's Web UI "Retry All" does: take each entry out of `retry`, re-serialise it and
# push it to its queue. A string Ruby cannot write as JSON makes the push raise after the
# entry was removed, and the job is gone.
RETRY_EACH = """
messages = Sidekiq::RetrySet.new.map { |e| e["error_message"] }
Sidekiq::RetrySet.new.each(&:retry)
emit("messages" => messages, "valid" => messages.map(&:valid_encoding?),
     "left" => Sidekiq::RetrySet.new.size)
"""


def test_python_error_with_a_lone_surrogate_survives_ruby_retry(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], ledger: Any
) -> None:
    python_worker()
    jid = BadName.perform_async("x")
    wait_for(lambda: RetrySet().find_job(jid), what="the failure in `retry`")
    out = run_ruby(RETRY_EACH)
    assert out["messages"] == ["cannot open rapport-\ufffdt\ufffd.csv"]
    assert out["valid"] == [True] and out["left"] == 0
    ledger.wait_done([jid])  # it ran again, in Python: Ruby's push did not lose it
    ledger.check({jid: ["x"]}, runner="python")
    assert ledger.attempts(jid) == 2


PUSH_WINDOWED = """
now = Time.now.to_f
inside = Sidekiq::Client.push("class" => "InteropWindowed", "args" => ["inside"],
  "retry" => 1, "retry_for" => 3600, "retry_count" => 4, "failed_at" => now - 3500)
# Sidekiq 8 writes failed_at as whole milliseconds.
outside = Sidekiq::Client.push("class" => "InteropWindowed", "args" => ["outside"],
  "retry" => 30, "retry_for" => 3600, "retry_count" => 0,
  "failed_at" => ((now - 3700) * 1000).to_i)
emit("inside" => inside, "outside" => outside)
"""


def test_ruby_pushed_retry_for_uses_the_window_not_the_count(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], ledger: Any
) -> None:
    python_worker()
    pushed = run_ruby(PUSH_WINDOWED)
    inside, outside = pushed["inside"], pushed["outside"]
    # Within its hour: retried although its count (5) is past its `retry` (1).
    entry = wait_for(lambda: RetrySet().find_job(inside), what="the job inside its window")
    assert entry.retry_count == 5
    # Past its hour: dead on this failure although 30 retries were allowed.
    dead = wait_for(lambda: DeadSet().find_job(outside), what="the job past its window")
    assert dead.retry_count == 1 and dead.item["retry_for"] == 3600
    assert DeadSet().find_job(inside) is None and RetrySet().find_job(outside) is None
    assert ledger.attempts(inside) == 1 and ledger.attempts(outside) == 1
    # Dead now, not scheduled for later: the worker stamps it on its estimate of
    # Redis's clock, which may lead this process's clock by a fraction of a second.
    assert dead.score <= time.time() + 1


def test_ruby_scheduler_moves_a_scrubbed_python_retry_back_to_python(
    start_sidekiq: Callable[..., Any], python_worker: Callable[..., Any], fast_toml: Any,
    ledger: Any, r: Any,
) -> None:
    # Python's own scheduler stays asleep, so only Ruby's poller can move the retry.
    text = fast_toml.read_text().replace("initial_poll_wait = 0", "initial_poll_wait = 600")
    fast_toml.write_text(text)
    python_worker("-q", "pyonly")
    start_sidekiq()  # works `default` only, but its poller moves every due retry
    jid = BadName.set(queue="pyonly").perform_async("y")
    entry = wait_for(lambda: RetrySet().find_job(jid), what="the failure in `retry`")
    r.zadd("retry", {entry.raw: time.time() - 1})  # due now rather than in 15+ s
    ledger.wait_done([jid])
    ledger.check({jid: ["y"]}, runner="python")
    assert ledger.attempts(jid) == 2 and RetrySet().size == 0
