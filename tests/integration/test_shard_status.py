"""`sidequest status` with shards names the queues waiting on a shard that no process serves,
even when that shard has no process at all: a worker run for another shard's queues only
registers on that shard, and the shard whose queues wait said nothing. Two real
redis-servers; the worker is a real subprocess."""

from __future__ import annotations

import io
from pathlib import Path

import redis

from fault.harness import Ledger, Worker, write_config
from helpers import wait_for
from redis_server import RedisServer
from sidequest import Job, connection, monitor


class Mail(Job):
    def perform(self, n: int) -> None:
        pass


def status(config: Path) -> tuple[str, str]:
    """The parts of `sidequest status` for shard default and shard reports."""
    connection.reset()  # the command reads its file, not this process's configuration
    out = io.StringIO()
    assert monitor.main("status", ["-C", str(config)], out=out) == 0
    default_part, reports_part = out.getvalue().split("Shard reports")
    return default_part, reports_part


def test_status_names_queues_of_a_shard_without_a_process_while_another_shard_has_one(
        two_shards: tuple[redis.Redis, redis.Redis], second_redis: RedisServer, redis_url: str,
        tmp_path: Path) -> None:
    first, other = two_shards
    Mail.perform_bulk([[i] for i in range(20)])
    Mail.set(queue="mail").perform_bulk([[i] for i in range(3)])
    config = tmp_path / "sidequest.toml"
    config.write_text(f'redis_url = "{redis_url}"\n[shards]\nreports = "{second_redis.url}"\n'
                      '[shard_queues]\nreports = "reports"\nexports = "reports"\n')
    # No process anywhere: every queue waits, as the lists show; nothing more is said.
    assert not any("No running process serves" in part for part in status(config))
    worker = Worker(redis_url, Ledger(tmp_path / "ledger.jsonl").path,
                    write_config(tmp_path / "w.toml"), tmp_path, "-q", "reports", "-q",
                    "exports", env={"SIDEQUEST_SHARDS": f"reports={second_redis.url}",
                                    "SIDEQUEST_SHARD_QUEUES": "reports=reports exports=reports"})
    try:
        wait_for(lambda: other.scard("processes"), 30, "the worker to register on its shard")
        assert first.scard("processes") == 0  # the default shard has no process of its own
        default_part, reports_part = status(config)
    finally:
        assert worker.reap() == 0, worker.log()
    assert "none running" in default_part
    assert "No running process serves: default (20), mail (3)." in default_part
    assert "No running process serves" not in reports_part
