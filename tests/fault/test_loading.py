"""A push to a Redis that is still loading its data set after a restart: Redis refuses every
command until it is done, so nothing was written, and the error says so. redis-py raises
the LOADING reply as a ConnectionError, which read as "may have been enqueued", and a
caller that checks before pushing again had nothing to find."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

import sidequest
from apps.fault_jobs import Work
from helpers import wait_for
from redis_server import RedisServer
from sidequest.errors import RedisUnavailable


def test_a_push_while_redis_loads_its_data_says_it_was_not_enqueued(tmp_path: Path) -> None:
    executable = shutil.which("redis-server")
    assert executable is not None
    server = RedisServer(executable, tmp_path)
    server.start()
    with server.client() as client:  # a data set that takes seconds to load, slowed down
        client.eval("for i = 1, 30000 do redis.call('SET', 'k' .. i, 'v') end", 0)
        client.save()
    server.stop()
    loading = subprocess.Popen(
        [executable, "--port", str(server.port), "--bind", server.host, "--dir", str(tmp_path),
         "--save", "", "--key-load-delay", "200",
         "--loading-process-events-interval-bytes", "1024"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sidequest.configure(redis_url=server.url)
    try:
        refused = wait_for(_refusal, timeout=10, what="a refusal while loading")
        assert "loading" in str(refused) and "was not enqueued" in str(refused), str(refused)
        assert "may have been enqueued" not in str(refused)
        with server.client() as client:
            assert _still_loading(client), "the refusal came once loading was over"
    finally:
        sidequest.connection.reset()
        loading.kill()
        loading.wait(10)


def _refusal() -> RedisUnavailable | None:
    try:
        Work.perform_async(0)
    except RedisUnavailable as exc:
        if "could not reach" in str(exc) and "loading" not in str(exc):
            return None  # not listening yet
        return exc
    pytest.fail("a push was accepted while Redis loaded its data set")


def _still_loading(client: redis.Redis) -> bool:
    return bool(client.info("persistence").get("loading"))
