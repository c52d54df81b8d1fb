"""Redis Cluster URLs: parsing, the errors for bad ones, and the key names they switch on."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sidequest import cluster, connection, keys, urls
from sidequest.errors import ConfigError


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    try:
        yield
    finally:
        connection.reset()
        keys.use_cluster_names(False)


def test_cluster_urls_are_accepted_with_their_startup_nodes() -> None:
    url = ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,node3,[::1]:7002,redis-2.local:7003,"
           "[fe80::1%25eth0]:7004,bücher.example:7005,[fe80::2%br-lan]:7006,"
           "[fe80::3%vlan_10]:7007")
    assert urls.check_url(url) == url
    assert urls.cluster_nodes(url) == [("10.0.0.1", 7000), ("10.0.0.2", 7001),
                                       ("node3", 6379), ("[::1]", 7002),
                                       ("redis-2.local", 7003), ("[fe80::1%25eth0]", 7004),
                                       ("bücher.example", 7005), ("[fe80::2%br-lan]", 7006),
                                       ("[fe80::3%vlan_10]", 7007)]
    assert urls.is_cluster("rediss+cluster://:pw@h:7000")
    assert not urls.is_cluster("redis://h:7000/0")


@pytest.mark.parametrize(("url", "says"), [
    ("redis+cluster://h:7000/1", "only database 0"),
    ("redis+cluster://h:7000/0", "only database 0"),
    ("redis+cluster://h:99999", "port from 1 to 65535"),
    ("redis+cluster://h:x", "HOST:PORT"),
    ("redis+cluster://:7000", "HOST:PORT"),
    # A semicolon between the nodes: looked up as one name, the worker waited for it.
    ("redis+cluster://10.0.0.1:7000;10.0.0.2:7000", "separate the nodes with commas"),
])
def test_bad_cluster_urls_are_refused_with_what_to_write(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        urls.check_url(url)
    assert "redis+cluster://" in str(caught.value)


def test_a_cluster_url_tags_every_key_and_a_plain_url_restores_sidekiqs_names() -> None:
    connection.configure("redis+cluster://127.0.0.1:7000")
    assert keys.queue("default") == "{sq}queue:default"
    assert (keys.RETRY, keys.SCHEDULE, keys.DEAD) == ("{sq}retry", "{sq}schedule", "{sq}dead")
    assert keys.process("host:1:abc") == "{sq}host:1:abc"
    assert keys.work("host:1:abc") == "{sq}host:1:abc:work"
    assert keys.inprogress("i") == "{sq}sq:inprogress:i"
    assert keys.QUEUE_PREFIX == "{sq}queue:"
    connection.configure("redis://127.0.0.1:6379/0")
    assert keys.queue("default") == "queue:default"
    assert (keys.RETRY, keys.work("h"), keys.inprogress("i")) == (
        "retry", "h:work", "sq:inprogress:i")


def test_mixing_cluster_and_plain_shards_is_refused() -> None:
    connection.configure("redis+cluster://127.0.0.1:7000")
    with pytest.raises(ConfigError, match="all shards or for none"):
        connection.new_client(target="redis://127.0.0.1:6380/0")


def test_shard_urls_may_be_cluster_urls_and_are_checked_the_same_way() -> None:
    from sidequest import shards

    table = shards.build({"b": "redis+cluster://h:7000,h:7001"}, {"q": "b"}, "test")
    assert table is not None and table.urls["b"] == "redis+cluster://h:7000,h:7001"
    with pytest.raises(ConfigError, match="only database 0"):
        shards.build({"b": "redis+cluster://h:7000/2"}, {"q": "b"}, "test")


@pytest.mark.parametrize("version", ["8.2.0", "8.10.1", "10.0.0b1"])
def test_a_recent_redis_py_runs_cluster_mode(version: str) -> None:
    cluster.check_version(version)


@pytest.mark.parametrize("version", ["8.1.0", "7.4.1", "5.0.8"])
def test_an_older_redis_py_is_refused_with_the_fix(version: str) -> None:
    with pytest.raises(ConfigError, match=rf"needs redis-py 8.2 or newer \(installed: "
                                          rf"{re.escape(version)}\): pip install "
                                          r"'sidequest\[cluster\]'"):
        cluster.check_version(version)


def test_each_shard_of_a_cluster_has_its_own_tag_and_plain_redis_none() -> None:
    """Key names follow the shard the code works on (its process's, or one a block chose);
    the limiters and the dashboard's logins keep the default shard's."""
    url = "redis+cluster://10.0.0.1:7000"
    connection.configure(url, shards={"eu": url}, shard_queues={"mail": "eu"})
    assert (keys.QUEUES, keys.queue("mail"), keys.tag_of("eu")) == (
        "{sq}queues", "{sq}queue:mail", "{sq:eu}")
    with connection.on_shard("eu"):
        assert (keys.QUEUES, keys.RETRY, keys.queue("mail"), keys.lease("p")) == (
            "{sq:eu}queues", "{sq:eu}retry", "{sq:eu}queue:mail", "{sq:eu}sq:lease:p")
        assert (keys.LIMITERS, keys.limiter("x"), keys.WEB_LOGIN_SLOT) == (
            "{sq}sq:limiters", "{sq}sq:limiter:x", "{sq}sq:web:login")
    assert keys.RETRY == "{sq}retry"
    connection.use_shard("eu")  # a worker process serving shard eu
    assert (keys.SCHEDULE, keys.limiter_over("x", keys.over_span(6000))) == ("{sq:eu}schedule",
                                                             "{sq}sq:limiter:x:over:10")
    connection.configure("redis://h:6379/0", shards={"eu": "redis://h2:6379/0"})
    with connection.on_shard("eu"):
        assert (keys.QUEUES, keys.queue("mail"), keys.tag_of("eu")) == (
            "queues", "queue:mail", "")
