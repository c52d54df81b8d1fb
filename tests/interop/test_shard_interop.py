"""Each shard is an ordinary Sidekiq Redis: Ruby Sidekiq's own API, pointed at a shard's URL,
reads the jobs Sidequest routed there (queue, schedule and stats), and sees none of them on
the other shard."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sidequest
from redis_server import RedisServer
from sidequest import Job, connection

SCRIPT = """\
require "json"
require "sidekiq"
require "sidekiq/api"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
Sidekiq.logger = Sidekiq::Logger.new($stderr)
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL") } }
queue = Sidekiq::Queue.new("reports")
puts JSON.generate({
  "queues" => Sidekiq::Queue.all.map(&:name).sort,
  "reports" => queue.map { |job| [job.klass, job.args, job.jid] },
  "scheduled" => Sidekiq::ScheduledSet.new.map { |job| [job.klass, job.queue, job.jid] },
  "enqueued" => Sidekiq::Stats.new.enqueued,
})
"""


class ReportRecord(Job):
    name = "ReportRecord"
    queue = "reports"

    def perform(self, *args: Any) -> None:
        raise NotImplementedError("read by Ruby only")


@pytest.fixture
def second(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_server.executable, tmp_path)
    server.start()
    sidequest.configure(redis_url, shards={"reports": server.url},
                        shard_queues={"reports": "reports"})
    try:
        yield server
    finally:
        connection.reset()
        server.stop()


def read_with_ruby(ruby: Any, url: str, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "read.rb"
    script.write_text(SCRIPT, "utf-8")
    proc = subprocess.run([ruby.executable, str(script)], env={**os.environ, "REDIS_URL": url},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_ruby_reads_each_shard_as_a_sidekiq_redis(ruby: Any, second: RedisServer,
                                                  redis_url: str, tmp_path: Path) -> None:
    now = ReportRecord.perform_async(1, "ü", {"k": [2**64]})
    later = ReportRecord.perform_in(600, 2)
    other = sidequest.enqueue("MailRecord", 3)  # the default queue, on the default shard
    on_shard = read_with_ruby(ruby, second.url, tmp_path)
    assert on_shard == {
        "queues": ["reports"],
        "reports": [["ReportRecord", [1, "ü", {"k": [2**64]}], now]],
        "scheduled": [["ReportRecord", "reports", later]],
        "enqueued": 1,
    }
    on_default = read_with_ruby(ruby, redis_url, tmp_path)
    assert on_default["queues"] == ["default"] and on_default["reports"] == []
    assert on_default["scheduled"] == [] and on_default["enqueued"] == 1
    assert other
