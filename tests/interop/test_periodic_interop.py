"""Periodic ticks pushed by Sidequest run in Ruby's ``sidekiq``: the payload of a tick is the
payload of a normal push (with two keys Ruby ignores), for a class only Ruby defines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import keys, periodic_jobs


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    periodic_jobs.clear()
    yield
    periodic_jobs.clear()


def test_sidekiq_runs_periodic_ticks(sidekiq_process: Any, r: redis.Redis, ledger: Any,
                                     sample_args: list[Any]) -> None:
    periodic_jobs.periodic("RubyOnlyRecord", every=1, args=sample_args, name="ruby-periodic")
    # The Python worker pushes the ticks; it reads another queue, so Ruby runs every one.
    with running_worker(queues=(("python-only", 0),)):
        wait_for(lambda: len(r.keys(keys.periodic_tick("ruby-periodic", 0)[:-1] + "*")) >= 3,
                 timeout=20, what="three ticks pushed")
    jids = [r.get(key) for key in r.keys(keys.periodic_tick("ruby-periodic", 0)[:-1] + "*")]
    expected = {str(jid): sample_args for jid in jids}
    ledger.wait_done(expected)
    ledger.check(expected, runner="ruby")
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0
