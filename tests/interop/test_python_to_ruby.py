"""Sidequest enqueues, Ruby's ``sidekiq`` runs: a job class that exists only in Ruby is
enqueued from Python through a stub class with the Ruby name, and through a raw push."""

from __future__ import annotations

import json
from typing import Any

import redis

from sidequest import Job, client


class RubyOnlyRecord(Job):
    """Enqueue-only stand-in for the Ruby class of this name (tests/interop/ruby/jobs.rb)."""

    name = "RubyOnlyRecord"

    def perform(self, *args: Any) -> None:
        raise NotImplementedError("RubyOnlyRecord runs in Ruby")


def test_sidekiq_runs_every_kind_of_python_push_with_identical_args(
    sidekiq_process: Any, r: redis.Redis, ledger: Any, sample_args: list[Any]
) -> None:
    bulk = [[i, f"bulk {i} ü", {"i": i, "big": 2**64 + i}] for i in range(3)]
    now_jid = RubyOnlyRecord.perform_async(*sample_args)
    later_jid = RubyOnlyRecord.perform_in(1.0, *sample_args)
    # perform_in went through `schedule` (due in 1 s: Ruby's poller has not moved it yet).
    assert [json.loads(m)["jid"] for m in r.zrange("schedule", 0, -1)] == [later_jid]
    bulk_jids = RubyOnlyRecord.perform_bulk(bulk)
    raw_jid = client.push({"class": "RubyOnlyRecord", "args": sample_args})
    assert raw_jid is not None and all(bulk_jids)
    expected = {jid: sample_args for jid in (now_jid, later_jid, raw_jid)}
    expected.update(zip([str(j) for j in bulk_jids], bulk, strict=True))
    ledger.wait_done(expected)
    ledger.check(expected, runner="ruby")
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0 and r.zcard("schedule") == 0
