"""One shard of three down (nothing listens at its port): the API, `sidequest stats`,
`status` and `periodic` read the shards that answer and name the one that does not, by name
and URL without its password, instead of failing for all of them."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import sidequest
from redis_server import RedisServer, free_port
from sidequest import Job, connection, monitor
from sidequest.api.stats import ShardUnreachable, Stats, each_reachable_shard, each_shard
from sidequest.api.status import JobStatus
from sidequest.errors import RedisUnavailable

JID = "ab" * 12


class StoredReport(Job):
    queue = "reports"
    store_result = True

    def perform(self) -> None:
        pass


@pytest.fixture
def mail_down(redis_url: str, second_redis: RedisServer) -> Iterator[str]:
    """Shards default, mail (down, with a password in its URL) and reports, in that order
    (the default first, then by name); yields mail's URL."""
    with second_redis.client() as other:
        other.flushall()
    dead = f"redis://:hunter2hunter2@127.0.0.1:{free_port()}/0"
    sidequest.configure(redis_url, shards={"reports": second_redis.url, "mail": dead},
                        shard_queues={"reports": "reports", "mail": "mail"})
    yield dead
    connection.reset()


def redacted(url: str) -> str:
    return url.replace("hunter2hunter2", "***")


def test_each_shard_names_the_shard_it_cannot_reach(mail_down: str) -> None:
    with pytest.raises(ShardUnreachable) as caught:
        each_shard(Stats)
    error = caught.value
    assert error.shard == "mail" and error.where == redacted(mail_down)
    assert f"shard 'mail' at {redacted(mail_down)}" in str(error)
    assert "hunter2" not in str(error) and "each_reachable_shard()" in str(error)
    # Sidequest's own error, and still the redis-py error callers caught before.
    assert isinstance(error, RedisUnavailable) and isinstance(error, redis.ConnectionError)


def test_each_reachable_shard_reads_the_others(mail_down: str, r: redis.Redis,
                                               second_redis: RedisServer) -> None:
    r.set("stat:processed", 5)
    second_redis.client().set("stat:processed", 7)
    reads = each_reachable_shard(Stats)
    assert list(reads.values) == ["default", "reports"] and list(reads.down) == ["mail"]
    assert reads.values["default"].processed == 5 and reads.values["reports"].processed == 7
    assert "Connection refused" in reads.down["mail"].reason


def test_job_status_is_found_past_a_shard_that_is_down(mail_down: str) -> None:
    jid = StoredReport.perform_async()  # on reports, which is read after mail
    assert jid and JobStatus(jid).state == "queued"


def test_cancel_with_a_shard_down_reaches_the_others_and_names_it(
        mail_down: str, second_redis: RedisServer) -> None:
    jid = StoredReport.set(queue="reports").perform_in(3600)  # scheduled, on reports
    assert sidequest.api.cancel(jid) is True  # found where it was: mail cannot hold it too
    with second_redis.client() as other:  # reports heard of it, and dropped the job
        assert other.zscore("sq:cancelled", jid) is not None and other.zcard("schedule") == 0
    # Not found on the shards that answer (queued or running there, or on mail): say so.
    with pytest.raises(ShardUnreachable, match=r"shard 'mail' at redis://:\*\*\*@.*recorded"
                                               r" on the shards that answered") as caught:
        sidequest.api.cancel(JID)
    assert "hunter2" not in str(caught.value)
    with second_redis.client() as other:
        assert other.zscore("sq:cancelled", JID) is not None


def test_job_status_not_found_with_a_shard_down_says_which(mail_down: str) -> None:
    with pytest.raises(RedisUnavailable, match=r"shard 'mail' at redis://:\*\*\*@") as caught:
        JobStatus(JID)
    assert f"job {JID}" in str(caught.value) and "hunter2" not in str(caught.value)


@pytest.fixture
def config(mail_down: str, redis_url: str, second_redis: RedisServer, tmp_path: Path) -> Path:
    path = tmp_path / "sq.toml"
    path.write_text(f'redis_url = "{redis_url}"\n[shards]\nreports = "{second_redis.url}"\n'
                    f'mail = "{mail_down}"\n[shard_queues]\nreports = "reports"\n'
                    'mail = "mail"\n')
    connection.reset()  # the command reads its file, not this process's configuration
    return path


def run(command: str, config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    out = io.StringIO()
    assert monitor.main(command, ["-C", str(config)], out=out) == 1  # a script notices
    return out.getvalue(), capsys.readouterr().err


def test_sidequest_stats_shows_the_shards_that_answer(config: Path, mail_down: str,
                                                      r: redis.Redis, second_redis: RedisServer,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    r.set("stat:processed", 5)
    second_redis.client().set("stat:processed", 7)
    text, err = run("stats", config, capsys)
    assert f"Shard mail ({redacted(mail_down)}): UNREACHABLE" in text
    reports_part, total_part = text.split("Shard reports")[1].split("All shards but mail")
    assert "Processed: 7 " in reports_part
    assert "(2 of 3; mail could not be read)" in total_part and "Processed: 12 " in total_part
    assert f"shard 'mail' at {redacted(mail_down)} is unreachable" in err
    assert "hunter2" not in text + err


@pytest.mark.parametrize(("command", "shown"), [("status", "Processes (0)"),
                                                ("periodic", "No periodic entries")])
def test_status_and_periodic_show_the_shards_that_answer(
        command: str, shown: str, config: Path, mail_down: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    text, err = run(command, config, capsys)
    assert text.count(shown) == 2  # default and reports
    assert f"Shard mail ({redacted(mail_down)}): UNREACHABLE" in text
    assert f"shard 'mail' at {redacted(mail_down)} is unreachable" in err
