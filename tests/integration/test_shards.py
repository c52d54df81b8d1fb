"""Sharding, client side: every push lands on the Redis server of its queue's shard, checked
with raw clients on both servers (two real redis-servers); stats and `sidequest stats` sum them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import sidequest
from redis_server import RedisServer, free_port
from sidequest import Batch, Job, client, connection, keys, limiter, monitor
from sidequest.api import BatchStatus
from sidequest.api.cancel import cancel
from sidequest.api.stats import Stats, Totals, each_shard, summed
from sidequest.api.status import JobStatus
from sidequest.errors import ConfigError

TESTS = Path(__file__).resolve().parents[1]


class Report(Job):
    queue = "reports"

    def perform(self, n: int) -> None:
        pass


class Mail(Job):
    def perform(self, n: int) -> None:
        pass


def bodies(r: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in r.lrange(key, 0, -1)]


def test_perform_async_goes_to_the_shard_of_its_queue(two_shards: tuple[redis.Redis,
                                                                     redis.Redis]) -> None:
    first, second = two_shards
    report_jid = Report.perform_async(1)
    mail_jid = Mail.perform_async(2)
    assert [j["jid"] for j in bodies(second, "queue:reports")] == [report_jid]
    assert [j["jid"] for j in bodies(first, "queue:default")] == [mail_jid]
    assert second.smembers("queues") == {b"reports"}
    assert first.smembers("queues") == {b"default"}
    assert not first.exists("queue:reports") and not second.exists("queue:default")


def test_scheduled_jobs_go_to_their_shards_schedule(two_shards: tuple[redis.Redis,
                                                                   redis.Redis]) -> None:
    first, second = two_shards
    Report.perform_in(60, 1)
    Mail.perform_at(time.time() + 60, 2)
    (on_second,) = second.zrange("schedule", 0, -1)
    (on_first,) = first.zrange("schedule", 0, -1)
    assert json.loads(on_second)["class"].endswith("Report")
    assert json.loads(on_first)["class"].endswith("Mail")


def test_a_bulk_push_across_shards_routes_each_job(two_shards: tuple[redis.Redis,
                                                                  redis.Redis]) -> None:
    first, second = two_shards
    items = [{"class": "Any", "args": [i], "queue": q}
             for i, q in enumerate(["reports", "default", "exports", "low", "reports"])]
    jids = client.push_many(items)
    assert all(jids)
    assert [j["args"] for j in reversed(bodies(second, "queue:reports"))] == [[0], [4]]
    assert [j["args"] for j in bodies(second, "queue:exports")] == [[2]]
    assert [j["args"] for j in bodies(first, "queue:default")] == [[1]]
    assert [j["args"] for j in bodies(first, "queue:low")] == [[3]]
    assert second.smembers("queues") == {b"reports", b"exports"}
    assert first.smembers("queues") == {b"default", b"low"}


def test_enqueue_by_name_is_routed(two_shards: tuple[redis.Redis, redis.Redis]) -> None:
    first, second = two_shards
    jid = sidequest.enqueue("other.app.Export", 7, queue="exports")
    assert [j["jid"] for j in bodies(second, "queue:exports")] == [jid]
    assert first.dbsize() == 0


def test_a_unique_lock_lives_on_the_jobs_shard(two_shards: tuple[redis.Redis, redis.Redis]) -> None:
    first, second = two_shards
    assert Report.set(unique_for=60).perform_async(5)
    assert Report.set(unique_for=60).perform_async(5) is None  # the lock holds on that shard
    assert len(second.keys(keys.UNIQUE_PREFIX + "*")) == 1
    assert first.keys(keys.UNIQUE_PREFIX + "*") == []
    assert second.llen("queue:reports") == 1


def test_a_batch_and_its_jobs_live_on_one_shard(two_shards: tuple[redis.Redis,
                                                               redis.Redis]) -> None:
    first, second = two_shards
    batch = Batch("reports", shard="reports")
    with batch.jobs():
        Report.perform_async(1)
    assert second.hget(f"sq:batch:{batch.bid}", "total") == b"1"
    assert not first.exists(f"sq:batch:{batch.bid}")
    (job,) = bodies(second, "queue:reports")
    assert job["sq_batch"] == [batch.bid]
    # Its status, from its bid alone (another process, say): looked for on every shard.
    status = BatchStatus(batch.bid)
    assert status.exists and status.total == 1 and status.pending == 1
    assert not BatchStatus("no-such-bid").exists

    default_batch = Batch("mail")
    with pytest.raises(ValueError, match="batch and its jobs live on one shard"), \
            default_batch.jobs():
        Report.perform_async(2)
    assert second.llen("queue:reports") == 1  # nothing written by the refused push
    with pytest.raises(ValueError, match="route the callback's queue"):
        Batch("x", on_success=(Report, [1]))


def test_a_retry_queue_on_another_shard_is_refused(two_shards: tuple[redis.Redis,
                                                                  redis.Redis]) -> None:
    first, second = two_shards
    with pytest.raises(ValueError, match="retry_queue 'low' is on shard 'default'"):
        Report.set(retry_queue="low").perform_async(1)
    assert second.dbsize() == 0 and first.dbsize() == 0


def test_unreachable_shard_names_itself(redis_url: str) -> None:
    sidequest.configure(redis_url, shards={"far": "redis://127.0.0.1:1/0"},
                        shard_queues={"reports": "far"})
    try:
        with pytest.raises(sidequest.RedisUnavailable, match="shard 'far'"):
            Report.perform_async(1)
    finally:
        connection.reset()


def test_the_environment_configures_shards(redis_url: str, second_redis: RedisServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with second_redis.client() as other:
        other.flushall()
    monkeypatch.setenv("SIDEQUEST_SHARDS", f"reports={second_redis.url}")
    monkeypatch.setenv("SIDEQUEST_SHARD_QUEUES", "reports=reports")
    connection.configure(redis_url)
    try:
        Report.perform_async(1)
        with second_redis.client() as other:
            assert other.llen("queue:reports") == 1
    finally:
        connection.reset()


def test_configure_refuses_a_bad_table(redis_url: str) -> None:
    with pytest.raises(ConfigError, match=r"shard 'x'.*not a Redis URL"):
        sidequest.configure(redis_url, shards={"x": "localhost:6379"})
    with pytest.raises(ConfigError, match=r"'exports' to shard 'report'.*did you mean 'reports'"):
        sidequest.configure(redis_url, shards={"reports": "redis://h:6379/0"},
                            shard_queues={"exports": "report"})
    connection.reset()


def test_stats_of_each_shard_and_their_sum(two_shards: tuple[redis.Redis, redis.Redis]) -> None:
    first, second = two_shards
    Report.perform_bulk([[i] for i in range(3)])
    Mail.perform_bulk([[i] for i in range(2)])
    sidequest.enqueue("x.Export", queue="exports")
    first.set("stat:processed", 10)
    second.set("stat:processed", 32)
    second.zadd("retry", {"{}": 1})
    each = each_shard(Stats)
    assert list(each) == ["default", "reports"]
    assert each["default"].queues == {"default": 2}
    assert each["reports"].queues == {"reports": 3, "exports": 1}
    total = summed(s.as_dict() for s in each.values())
    assert (total["enqueued"], total["processed"], total["retries"]) == (6, 42, 1)
    totals = each_shard(Totals.read)
    assert summed(t.as_dict() for t in totals.values())["enqueued"] == 6


def test_sidequest_stats_shows_each_shard_and_the_total(
        two_shards: tuple[redis.Redis, redis.Redis], second_redis: RedisServer, redis_url: str,
        tmp_path: Path) -> None:
    first, second = two_shards
    Report.perform_bulk([[i] for i in range(3)])
    Mail.perform_async(1)
    first.set("stat:processed", 5)
    second.set("stat:processed", 7)
    config = tmp_path / "sidequest.toml"
    config.write_text(f'redis_url = "{redis_url}"\n[shards]\nreports = "{second_redis.url}"\n'
                      '[shard_queues]\nreports = "reports"\n')
    connection.reset()  # the command reads its file, not this process's configuration
    out = io.StringIO()
    assert monitor.main("stats", ["-C", str(config)], out=out) == 0
    text = out.getvalue()
    default_part, rest = text.split("Shard reports")
    reports_part, total_part = rest.split("All 2 shards")
    assert default_part.startswith("Shard default (redis://")
    assert "Processed: 5 " in default_part and "Enqueued: 1 " in default_part
    assert "Processed: 7 " in reports_part and "reports  3" in reports_part
    assert "Processed: 12 " in total_part and "Enqueued: 4 " in total_part
    assert "reports  3" in total_part and "default  1" in total_part
    out = io.StringIO()
    assert monitor.main("status", ["-C", str(config)], out=out) == 0
    assert "Shard default" in out.getvalue() and "Shard reports" in out.getvalue()


def test_sidequest_stats_names_jobs_left_on_a_shard_their_queue_is_not_routed_to(
        two_shards: tuple[redis.Redis, redis.Redis], second_redis: RedisServer, redis_url: str,
        tmp_path: Path) -> None:
    # Pushed by a process without the shard table: on the default shard, where no worker
    # with the table looks for the reports queue.
    first, _ = two_shards
    first.sadd("queues", "reports")
    first.lpush("queue:reports", json.dumps({"class": "Report", "args": [1], "jid": "s" * 24,
                                             "queue": "reports"}))
    Report.perform_async(2)  # where the table routes it: not misplaced
    config = tmp_path / "sidequest.toml"
    config.write_text(f'redis_url = "{redis_url}"\n[shards]\nreports = "{second_redis.url}"\n'
                      '[shard_queues]\nreports = "reports"\n')
    connection.reset()
    out = io.StringIO()
    assert monitor.main("stats", ["-C", str(config)], out=out) == 0
    text = out.getvalue()
    assert ("Queue reports has 1 job on shard default, but the shard table routes it to shard"
            " reports") in text
    assert (f"sidequest -C /dev/null -r <your jobs module> --redis-url {redis_url} -q reports"
            in text)
    assert text.count("Queue reports has") == 1
    # A process there reads that queue (a Ruby app of its own, say): nothing is stranded.
    first.sadd("processes", "ruby:1:abcd")
    first.hset("ruby:1:abcd", mapping={"info": json.dumps({"hostname": "ruby",
                                                          "queues": "reports"}),
                                       "beat": time.time(), "busy": 0})
    out = io.StringIO()
    assert monitor.main("stats", ["-C", str(config)], out=out) == 0
    assert "Queue reports has" not in out.getvalue()


def test_a_shard_that_stops_answering_between_reads_is_not_called_stranded(
        redis_url: str) -> None:
    """Its figures were read, then it went away before its processes were: stats says
    nothing of its queues rather than failing (the shard table names it down elsewhere)."""
    from types import SimpleNamespace

    sidequest.configure(redis_url, shards={"far": f"redis://127.0.0.1:{free_port()}/0"},
                        shard_queues={"reports": "default"})
    try:
        figures: Any = SimpleNamespace(queues={"reports": 3})
        assert monitor._misplaced_lines({"far": figures}) == []
    finally:
        connection.reset()


def test_sidequest_stats_reports_a_bad_shard_table(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sidequest.toml"
    config.write_text('[shard_queues]\nreports = "nowhere"\n')
    assert monitor.main("stats", ["-C", str(config)]) == 2
    assert "'reports' to shard 'nowhere', which is not defined" in capsys.readouterr().err
    connection.reset()


class StoredReport(Job):
    queue = "reports"
    store_result = True

    def perform(self) -> None:
        pass


def test_status_and_cancel_find_a_job_on_any_shard(two_shards: tuple[redis.Redis,
                                                                  redis.Redis]) -> None:
    first, second = two_shards
    jid = StoredReport.perform_async()
    assert second.exists(f"sq:status:{jid}") and not first.exists(f"sq:status:{jid}")
    assert JobStatus(jid).state == "queued"  # looked up from the default shard
    later = Report.perform_in(600, 1)
    assert cancel(later) is True
    assert second.zcard("schedule") == 0
    # Every shard's workers hear of it (a queued copy could be fetched on either).
    assert first.zscore("sq:cancelled", later) and second.zscore("sq:cancelled", later)
    assert cancel("f" * 24) is False


def test_limiters_live_on_the_default_shard(two_shards: tuple[redis.Redis, redis.Redis]) -> None:
    first, second = two_shards
    with connection.on_shard("reports"), limiter.concurrent("pdf", 1):
        assert connection.client().connection_pool.connection_kwargs["port"] != \
            first.connection_pool.connection_kwargs["port"]  # the block is on the other shard
        assert first.zcard(keys.limiter("pdf")) == 1  # the slot is taken on the default one
    assert first.zcard(keys.limiter("pdf")) == 0 and first.zcard(keys.LIMITERS) == 1
    assert second.dbsize() == 0


def test_a_later_configure_keeps_the_shards_set_in_code(
        two_shards: tuple[redis.Redis, redis.Redis], redis_url: str) -> None:
    """An extension (Flask's) configuring the URL after the app set its shards must not strand
    the shards' jobs on the default Redis, where no worker of their queue looks."""
    first, second = two_shards
    sidequest.configure(redis_url, socket_timeout=5)
    Report.perform_async(4242)
    assert second.llen("queue:reports") == 1 and not first.exists("queue:reports")
    sidequest.configure(redis_url, shards={})  # an empty table drops them
    Report.perform_async(4243)
    assert first.llen("queue:reports") == 1 and second.llen("queue:reports") == 1


def test_reset_forgets_the_shards_set_in_code(two_shards: tuple[redis.Redis, redis.Redis],
                                              redis_url: str) -> None:
    first, second = two_shards
    connection.reset()
    sidequest.configure(redis_url)
    assert connection.shard_map() is None
    Report.perform_async(1)
    assert first.llen("queue:reports") == 1 and second.dbsize() == 0


def test_a_kept_table_is_checked_against_the_new_url(
        two_shards: tuple[redis.Redis, redis.Redis], second_redis: RedisServer,
        redis_url: str) -> None:
    _first, second = two_shards
    with pytest.raises(ConfigError, match=r"shard 'reports' .* names the same Redis as the "
                                          r"default shard"):
        sidequest.configure(second_redis.url)
    Report.perform_async(1)  # the refused call changed nothing
    assert second.llen("queue:reports") == 1 and connection.default_url() == redis_url


def test_a_worker_url_on_a_shards_redis_is_refused(
        two_shards: tuple[redis.Redis, redis.Redis], second_redis: RedisServer,
        redis_url: str) -> None:
    # The worker's --redis-url (set_url) must not bypass the check configure() makes.
    with pytest.raises(ConfigError, match=r"shard 'reports' .* names the same Redis as the "
                                          r"default shard"):
        connection.set_url(second_redis.url)
    assert connection.default_url() == redis_url


def loopback_twin(url: str) -> str:
    """``url`` with 127.0.0.1 spelt localhost: the same Redis."""
    return url.replace("127.0.0.1", "localhost")


@pytest.mark.parametrize("spelling", [lambda url: url, loopback_twin,
                                      lambda url: url.removesuffix("/0")])
def test_a_shard_on_the_default_redis_is_refused(redis_url: str, r: redis.Redis,
                                                 spelling: Any) -> None:
    """Its queues would share the default's keys, and `sidequest stats` count them twice."""
    with pytest.raises(ConfigError, match=r"shards: shard 'a' \(redis://.*\) names the same "
                                          r"Redis as the default shard \(redis_url "
                                          r"redis://.*\), where they would share every key: "
                                          r"point shard 'a' at another Redis server"):
        sidequest.configure(redis_url, shards={"a": spelling(redis_url)},
                            shard_queues={"reports": "a"})
    Report.perform_async(1)
    assert r.llen("queue:reports") == 1
    assert connection.shard_map() is None


def test_two_spellings_of_one_shard_are_refused(redis_url: str,
                                                second_redis: RedisServer) -> None:
    url = second_redis.url
    with pytest.raises(ConfigError, match=rf"shards 'a' and 'b' name the same Redis \({url} "
                                          rf"and {loopback_twin(url)}\)"):
        sidequest.configure(redis_url, shards={"a": url, "b": loopback_twin(url)})


def test_the_environment_and_the_worker_refuse_a_shard_on_the_default_redis(
        redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIDEQUEST_SHARDS", f"a={loopback_twin(redis_url)}")
    with pytest.raises(ConfigError, match=r"\$SIDEQUEST_SHARDS: shards: shard 'a'.* names the "
                                          r"same Redis as the default shard"):
        Report.perform_async(1)
    monkeypatch.delenv("SIDEQUEST_SHARDS")
    config = tmp_path / "sidequest.toml"  # the worker's (and stats') settings file
    config.write_text(f'redis_url = "{redis_url}"\n[shards]\na = "{redis_url}"\n')
    assert monitor.main("stats", ["-C", str(config)]) == 2
    assert "names the same Redis as the default shard" in capsys.readouterr().err
    connection.reset()
    worker = subprocess.run([sys.executable, "-m", "sidequest", "-r", "apps.fault_jobs", "-C",
                             str(config)], capture_output=True, text=True, timeout=60,
                            check=False, env={**os.environ, "PYTHONPATH": str(TESTS)})
    assert worker.returncode == 2, worker.stderr
    assert "names the same Redis as the default shard" in worker.stderr
    assert "Traceback" not in worker.stderr


def test_another_database_of_the_default_server_is_a_shard_of_its_own(
        redis_url: str, r: redis.Redis) -> None:
    """Accepted (the docs refuse only a shard that would share every key): its keys are
    apart, so nothing is counted twice, though it adds no capacity."""
    other_db = redis_url.removesuffix("/0") + "/1"
    sidequest.configure(redis_url, shards={"side": other_db}, shard_queues={"reports": "side"})
    try:
        with redis.Redis.from_url(other_db) as side:
            side.flushdb()
            Report.perform_bulk([[1], [2]])
            Mail.perform_async(3)
            assert side.llen("queue:reports") == 2 and r.llen("queue:default") == 1
            assert summed(t.as_dict() for t in each_shard(Totals.read).values())[
                "enqueued"] == 3
            side.flushdb()
    finally:
        connection.reset()
