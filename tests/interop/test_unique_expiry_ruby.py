"""Ruby's ``sidekiq`` runs Sidequest's unique and expiring jobs: their extra payload keys
(``sq_unique``, ``sq_expires_at``) are ignored there. Uniqueness and expiry are enforced by
Sidequest processes only: a Ruby worker neither releases the lock (it lasts its TTL) nor
drops a late job."""

from __future__ import annotations

from typing import Any

import redis

from sidequest import Job


class RubyOnlyRecord(Job):
    """Enqueue-only stand-in for the Ruby class of this name (tests/interop/ruby/jobs.rb)."""

    name = "RubyOnlyRecord"
    unique_for = 60

    def perform(self, *args: Any) -> None:
        raise NotImplementedError("RubyOnlyRecord runs in Ruby")


def test_sidekiq_runs_unique_and_expiring_payloads(
    sidekiq_process: Any, r: redis.Redis, ledger: Any
) -> None:
    unique = RubyOnlyRecord.perform_async(1, "unique")
    assert unique is not None
    assert RubyOnlyRecord.perform_async(1, "unique") is None
    # A 1 ms deadline, long gone when fetched: a Sidequest worker would drop it, Ruby runs it.
    late = RubyOnlyRecord.set(unique_for=None, expires_in=0.001).perform_async(2, "late")
    assert late is not None
    bulk = RubyOnlyRecord.perform_bulk([[3, "bulk"], [3, "bulk"]])
    assert bulk[0] is not None and bulk[1] is None
    expected = {unique: [1, "unique"], late: [2, "late"], bulk[0]: [3, "bulk"]}
    ledger.wait_done(expected)
    ledger.check(expected, runner="ruby")
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0
    # Ruby does not release Sidequest's locks: they last until their TTL.
    assert RubyOnlyRecord.perform_async(1, "unique") is None
