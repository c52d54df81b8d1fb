"""The scheduler's first poll waits ``initial_poll_wait`` (Sidekiq waits 10 s), then polls at
its usual pace."""

from __future__ import annotations

import json
import time

import redis

from helpers import running_worker, wait_for


def test_first_poll_waits_initial_poll_wait(r: redis.Redis) -> None:
    due = json.dumps({"class": "Nobody", "args": [], "queue": "parked", "jid": "c" * 24,
                      "retry": True, "created_at": time.time()})
    r.zadd("schedule", {due: time.time() - 60})
    # The worker does not work "parked", so the job stays where the scheduler puts it.
    started = time.monotonic()
    with running_worker(initial_poll_wait=1.5, queues=(("elsewhere", 0),)):
        wait_for(lambda: r.llen("queue:parked") == 1, what="the scheduler's first poll")
        waited = time.monotonic() - started
    assert 1.5 <= waited < 1.5 + 8  # not before the wait; FAST's poll_interval adds <= 0.1
    assert r.zcard("schedule") == 0
