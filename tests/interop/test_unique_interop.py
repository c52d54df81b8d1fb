"""Unique and expiring jobs with Ruby Sidekiq: Ruby runs their payloads (it ignores the
``unique_*`` and ``expires_at`` keys); only Sidequest processes release the lock, so after
a Ruby run it lasts until its TTL."""

from __future__ import annotations

from typing import Any

import redis

from sidequest import client, keys

#: Runs in Ruby only (tests/interop/ruby/jobs.rb); pushed by name, as another service would.
RUBY_ONLY = {"class": "RubyOnlyRecord", "queue": "default"}


def test_ruby_runs_unique_and_expiring_payloads(
    sidekiq_process: Any, ledger: Any, r: redis.Redis
) -> None:
    unique_jid = client.push({**RUBY_ONLY, "args": [1, "u"], "unique_for": 60})
    assert unique_jid and client.push({**RUBY_ONLY, "args": [1, "u"], "unique_for": 60}) is None
    expiring_jid = client.push({**RUBY_ONLY, "args": [2, "e"], "expires_in": 600})
    assert expiring_jid
    ledger.wait_done([unique_jid, expiring_jid])
    ledger.check({unique_jid: [1, "u"], expiring_jid: [2, "e"]}, runner="ruby")
    (lock,) = r.keys(keys.UNIQUE_PREFIX + "*")
    assert r.get(lock) == unique_jid and 0 < r.ttl(lock) <= 60
