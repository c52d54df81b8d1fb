"""Keyword arguments and Ruby Sidekiq: Ruby ignores the ``kwargs`` key when it runs a job, and
its API keeps the key when it moves a job (retry now, add to queue)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from sidequest import client
from sidequest.payload import KWARGS, dumps

#: Runs in Ruby only (tests/interop/ruby/jobs.rb); pushed by name, as another service would.
RUBY_ONLY = {"class": "RubyOnlyRecord", "queue": "default"}

MOVE = """
Sidekiq::RetrySet.new.find_job(INPUT["retry"]).retry
Sidekiq::ScheduledSet.new.find_job(INPUT["scheduled"]).add_to_queue
emit(Sidekiq::Queue.new("default").map(&:item))
"""


def test_ruby_runs_a_job_with_kwargs_on_its_positional_args(
    sidekiq_process: Any, ledger: Any
) -> None:
    jid = client.push({**RUBY_ONLY, "args": [1, "two"], KWARGS: {"template": "reminder"}})
    assert jid is not None
    ledger.wait_done([jid])
    ledger.check({jid: [1, "two"]}, runner="ruby")


def test_ruby_api_moves_keep_kwargs(run_ruby: Callable[..., Any], r: redis.Redis) -> None:
    kwargs = {"template": "reminder", "tags": ["é", 2**70]}
    scheduled = client.push({**RUBY_ONLY, "args": [1], KWARGS: kwargs, "at": time.time() + 600})
    failed = {"class": "RubyOnlyRecord", "args": [2], KWARGS: kwargs, "queue": "default",
              "jid": "f" * 24, "created_at": time.time(), "retry": True, "retry_count": 0,
              "failed_at": time.time(), "error_class": "E", "error_message": "m"}
    r.zadd("retry", {dumps(failed): time.time() + 600})
    items = run_ruby(MOVE, {"retry": "f" * 24, "scheduled": scheduled})
    assert sorted((i["jid"], i["args"], i[KWARGS]) for i in items) == sorted(
        [(scheduled, [1], kwargs), ("f" * 24, [2], kwargs)])
    assert all(json.loads(raw)[KWARGS] == kwargs for raw in r.lrange("queue:default", 0, -1))
