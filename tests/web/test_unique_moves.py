"""Retrying a unique job from Dead takes its lock again, as a push does (it gave the lock back
when it died): while an identical job holds it, the job stays in Dead and the message says why.
Before, it went back to its queue without the lock and an identical push ran beside it."""

from __future__ import annotations

import html
import time
from typing import Any

import pytest
import redis

from sidequest import keys
from web_helpers import Client, failed, flash

pytestmark = pytest.mark.redis

DEAD, OTHER = "d" * 24, "e" * 24
DIGEST = "f" * 32


def message(client: Client, answer: Any) -> str:
    assert answer.status_code == 303
    return html.unescape(flash(client.get(answer.headers["location"]).text))


def test_a_dead_unique_job_is_retried_only_once_its_lock_is_free(client: Client,
                                                                 r: redis.Redis) -> None:
    r.zadd("dead", {failed(DEAD, unique_for=60, unique_digest=DIGEST): time.time()})
    lock = keys.unique_lock(DIGEST)
    r.set(lock, OTHER, ex=60)  # an identical job, pushed after this one died, is queued
    answer = client.submit("/morgue/all/retry")
    assert message(client, answer) == (
        "Retried: 0. 1 job was not retried: an identical job holds its unique lock (it is"
        " queued, scheduled, running or waiting to retry; unique_for); try again once it has"
        " ended.")
    assert r.zcard("dead") == 1 and r.llen("queue:default") == 0
    r.delete(lock)  # the identical job ended
    assert message(client, client.submit("/morgue/all/retry")) == "Retried: 1."
    assert r.llen("queue:default") == 1 and r.get(lock) == DEAD
    assert 0 < r.pttl(lock) <= 60_000
