"""A limiter whose Redis cannot be reached says so, naming the limiter and where it lives;
a concurrent slot that cannot be given back is not the job's failure (its work is done)."""

from __future__ import annotations

import logging

import pytest
import redis

import sidequest
from redis_server import free_port
from sidequest import limiter
from sidequest.errors import RedisUnavailable


def test_a_limiter_that_cannot_reach_redis_names_itself_and_the_url(redis_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    sidequest.configure(redis_url=dead)
    with pytest.raises(RedisUnavailable) as caught, limiter.bucket("reports-api", 10, "minute"):
        pass
    message = str(caught.value)
    assert "limiter 'reports-api' could not reach its Redis at " + dead in message
    assert isinstance(caught.value, redis.ConnectionError)  # what code caught before
    assert "Start it or correct its URL" in message


def test_a_slot_that_cannot_be_given_back_is_logged_not_raised(
    redis_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    slots = limiter.concurrent("stripe-unreachable", 1, lock_timeout=5)
    # Taken on the live Redis, and the block ends without raising, though the slot could
    # not be given back:
    with caplog.at_level(logging.WARNING, logger="sidequest"), slots:
        sidequest.configure(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert any("limiter 'stripe-unreachable' could not reach" in rec.getMessage()
               and "frees itself within 5 s" in rec.getMessage() for rec in caplog.records)
