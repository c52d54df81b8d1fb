"""Sharding, worker side: one `sidequest` command given queues on two shards runs the jobs of
both, registers on both (each shard's process set), and each job's retry stays on its shard.
Two real redis-servers; the worker is a real subprocess (a supervisor and one process per
shard)."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from apps.fault_jobs import Work
from fault.harness import Ledger, Worker, write_config
from helpers import wait_for
from redis_server import RedisServer
from sidequest import Job


class Fails(Job):
    name = "fault.Fails"  # not loaded by the worker: it fails as an unknown job, and retries

    def perform(self) -> None:
        pass


def shard_env(second: RedisServer) -> dict[str, str]:
    return {"SIDEQUEST_SHARDS": f"reports={second.url}", "SIDEQUEST_SHARD_QUEUES":
            "reports=reports"}


def test_one_command_serves_queues_on_two_shards(two_shards: tuple[redis.Redis, redis.Redis],
                                                 second_redis: RedisServer, redis_url: str,
                                                 tmp_path: Path) -> None:
    first, other = two_shards
    ledger = Ledger(tmp_path / "ledger.jsonl")
    config = write_config(tmp_path / "w.toml")
    worker = Worker(redis_url, ledger.path, config, tmp_path, "-q", "default", "-q", "reports",
                    "-c", "2", env=shard_env(second_redis))
    try:
        wait_for(lambda: first.scard("processes") and other.scard("processes"), 30,
                 "the worker to register on both shards")
        (on_first,) = first.smembers("processes")
        (on_other,) = other.smembers("processes")
        assert on_first != on_other  # one process per shard, each on its own Redis
        assert json.loads(first.hget(on_first, "info") or b"{}")["queues"] == ["default"]
        assert json.loads(other.hget(on_other, "info") or b"{}")["queues"] == ["reports"]
        default_jids = Work.perform_bulk([[0]] * 5)
        report_jids = Work.set(queue="reports").perform_bulk([[0]] * 5)
        failing = Fails.set(queue="reports").perform_async()
        wait_for(lambda: ledger.done_count() == 10, 30, "the 10 jobs of both shards")
        pids = {e[1]: e[3] for e in ledger.entries() if e[0] == "done"}
        # Each shard's jobs ran in the process serving it.
        assert len({pids[j] for j in default_jids}) == 1
        assert len({pids[j] for j in report_jids}) == 1
        assert {pids[j] for j in default_jids} != {pids[j] for j in report_jids}
        # Each process counts its jobs on its own shard (flushed with its heartbeat).
        wait_for(lambda: int(first.get("stat:processed") or 0) == 5, 10, "5 processed counted")
        # The failing job counts as processed (and failed), as in Sidekiq.
        wait_for(lambda: int(other.get("stat:processed") or 0) == 6, 10, "6 processed counted")
        assert int(other.get("stat:failed") or 0) == 1 and not first.get("stat:failed")
        wait_for(lambda: other.zcard("retry"), 30, "the failed job's retry on its shard")
        (retry,) = other.zrange("retry", 0, -1)
        assert json.loads(retry)["jid"] == failing
        assert first.zcard("retry") == 0
    finally:
        assert worker.reap() == 0, worker.log()
    # A graceful stop clears the process entries on both shards.
    assert first.scard("processes") == 0 and other.scard("processes") == 0
    # Each line says which shard's process wrote it: an outage's lines named no Redis.
    said = [line for line in worker.log().splitlines() if failing in line]
    assert said and all(" shard=reports " in line for line in said), said


def test_a_worker_of_one_other_shard_is_one_process_on_it(
        two_shards: tuple[redis.Redis, redis.Redis], second_redis: RedisServer, redis_url: str,
        tmp_path: Path) -> None:
    first, other = two_shards
    ledger = Ledger(tmp_path / "ledger.jsonl")
    worker = Worker(redis_url, ledger.path, write_config(tmp_path / "w.toml"), tmp_path,
                    "-q", "reports", env=shard_env(second_redis))
    try:
        wait_for(lambda: other.scard("processes"), 30, "the worker to register on its shard")
        (identity,) = other.smembers("processes")
        assert f":{worker.pid}:".encode() in identity  # no supervisor: the process itself
        jids = Work.set(queue="reports").perform_bulk([[0]] * 3)
        wait_for(lambda: ledger.done_count() == 3, 30, "the shard's 3 jobs")
        assert set(ledger.counts("done")) == set(jids)
        assert first.scard("processes") == 0 and first.dbsize() == 0, first.keys()
    finally:
        assert worker.reap() == 0, worker.log()
