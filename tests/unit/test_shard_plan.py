"""How a worker splits its queues over shards (worker/sharding.py), without Redis: the
routing table is set and no client is made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidequest import connection
from sidequest.config import build
from sidequest.errors import ConfigError
from sidequest.periodic_jobs import from_table
from sidequest.worker import sharding


@pytest.fixture
def routed() -> Iterator[None]:
    connection.configure("redis://127.0.0.1:1/0", shards={"reports": "redis://127.0.0.1:2/0"},
                         shard_queues={"reports": "reports", "exports": "reports"})
    try:
        yield
    finally:
        connection.reset()


def test_queues_are_split_by_shard_keeping_order_and_weights(routed: None) -> None:
    config = build(queues=(("critical", 3), ("reports", 2), ("default", 1), ("exports", 1)))
    plan = sharding.plan(config)
    assert [(shard, own.queues) for shard, own in plan] == [
        ("default", (("critical", 3), ("default", 1))),
        ("reports", (("reports", 2), ("exports", 1)))]
    assert all(own.concurrency == config.concurrency for _, own in plan)


def test_one_redis_is_one_plan() -> None:
    connection.reset()
    config = build(queues=(("a", 0), ("b", 0)))
    assert sharding.plan(config) == [("default", config)]


def test_a_process_refuses_queues_of_another_shard(routed: None) -> None:
    with pytest.raises(ConfigError, match=r"talks to shard 'default'.*reports \(shard reports\)"):
        sharding.check_served(build(queues=(("default", 0), ("reports", 0))))
    connection.use_shard("reports")
    sharding.check_served(build(queues=(("reports", 0), ("exports", 0))))  # its own: fine
    assert connection.url() == "redis://127.0.0.1:2/0"


def test_periodic_entries_belong_to_the_shard_of_their_queue(routed: None) -> None:
    nightly = from_table({"name": "nightly", "class": "app.Nightly", "cron": "0 3 * * *",
                          "queue": "exports"}, "test")
    hourly = from_table({"name": "hourly", "class": "app.Hourly", "cron": "0 * * * *"}, "test")
    assert sharding.own_entries([nightly, hourly]) == [hourly]
    connection.use_shard("reports")
    assert sharding.own_entries([nightly, hourly]) == [nightly]


def test_an_unknown_shard_is_named(routed: None) -> None:
    with pytest.raises(ConfigError, match="no shard named 'eu'; the shards are: default, "
                                          "reports"):
        connection.use_shard("eu")
