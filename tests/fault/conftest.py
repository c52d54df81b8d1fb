"""Fixtures of the fault tests: a private Redis per test (faults may kill it), a ledger
file, worker subprocesses that are always reaped, and the fault proxy."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from fault.harness import Ledger, Worker, write_config
from fault.proxy import FaultProxy
from redis_server import RedisServer

SpawnWorker = Callable[..., Worker]


def need_redis() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        hint = "redis-server is missing: run `make redis`"
        if os.environ.get("CI") == "true":
            pytest.fail(hint)
        pytest.skip(hint)
    return executable


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: a fault may stop, kill or fill it."""
    directory = tmp_path / "redis"
    directory.mkdir()
    instance = RedisServer(need_redis(), directory)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def r(server: RedisServer) -> Iterator[redis.Redis]:
    """Bytes client straight to the server (never through the proxy)."""
    client = server.client(socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")


@pytest.fixture
def sq(server: RedisServer) -> Iterator[str]:
    """sidequest's client side configured for this test's server; returns the URL."""
    import sidequest
    import sidequest.connection

    sidequest.configure(redis_url=server.url)
    try:
        yield server.url
    finally:
        sidequest.connection.reset()


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[FaultProxy]:
    instance = FaultProxy(server.port).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def spawn(server: RedisServer, ledger: Ledger, tmp_path: Path) -> Iterator[SpawnWorker]:
    """``spawn("-c", "10", url=..., env=..., **config)``: a worker subprocess, reaped at the end.

    ``url`` defaults to the test's server; config keywords override the FAST timers.
    """
    workers: list[Worker] = []

    def make(*args: str, url: str | None = None, env: dict[str, str] | None = None,
             **config: Any) -> Worker:
        path = write_config(tmp_path / f"worker-{len(workers)}.toml", **config)
        worker = Worker(url or server.url, ledger.path, path, tmp_path, *args, env=env)
        workers.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in workers:
            worker.reap(timeout=5)
