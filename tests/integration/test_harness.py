"""The Redis harness itself: a private server, an empty db per test, restartable."""

from __future__ import annotations

import pytest
import redis

from redis_server import NO_RETRY, RedisServer


def test_server_answers_on_private_port(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis_server.client() as client:
        assert client.ping() is True


# The two tests below each leave a key behind; whichever runs second proves the flush.
def test_db_empty_at_start_a(r: redis.Redis) -> None:
    assert r.dbsize() == 0
    r.set("harness:a", "1")


def test_db_empty_at_start_b(r: redis.Redis) -> None:
    assert r.dbsize() == 0
    r.set("harness:b", "1")


def test_stop_start_keeps_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    assert not redis_server.running
    with redis_server.client(retry=NO_RETRY) as client, pytest.raises(redis.ConnectionError):
        client.ping()
    redis_server.start()
    assert redis_server.port == port
    with redis_server.client() as client:
        assert client.ping() is True
