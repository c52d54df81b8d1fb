"""Sharding's configuration: the TOML tables, the environment, and the errors that say what
to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidequest import shards, urls
from sidequest.config import build
from sidequest.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sidequest.toml"
    path.write_text(text, "utf-8")
    return str(path)


def test_toml_tables_give_the_routing_table(tmp_path: Path) -> None:
    config = build(write(tmp_path, '[shards]\nreports = "redis://h2:6379/0"\n'
                                   '[shard_queues]\nreports = "reports"\nexports = "reports"\n'))
    table = shards.build(config.shards, config.shard_queues)
    assert table is not None
    assert table.names == ["default", "reports"]
    assert table.shard_of("exports") == "reports" and table.shard_of("mail") == "default"
    assert table.group(["a", "reports", "b", "exports"]) == {
        "default": ["a", "b"], "reports": ["reports", "exports"]}


def test_no_shards_means_one_redis() -> None:
    assert shards.build({}, {}) is None
    assert shards.from_env({}) is None


@pytest.mark.parametrize(("text", "message"), [
    ('[shards]\nreports = "h2:6379"\n', r"sidequest.toml: shards: shard 'reports': 'h2:6379' "
                                        r"is not a Redis URL: write it as redis://"),
    ('[shard_queues]\nexports = "reports"\n', r"sidequest.toml: shard_queues routes queue "
                                              r"'exports' to shard 'reports', which is not "
                                              r"defined; define it under shards"),
    ('[shards]\ndefault = "redis://h:1/0"\n', r"the shard named 'default' is the ordinary "
                                              r"Redis URL \(redis_url\)"),
    ('[shards]\n"a b" = "redis://h:1/0"\n', r"shard name 'a b': use ASCII letters"),
    ('shards = ["redis://h:1/0"]\n', r"shards must map shard names to Redis URLs"),
    ('[shards]\na = "redis://:pw@h:1/0"\nb = "redis://:pw@h:1/0"\n',
     r"shards 'a' and 'b' name the same Redis \(redis://:\*\*\*@h:1/0\), where they would "
     r"share every key: route their queues to one shard"),
])
def test_a_bad_table_is_a_config_error_naming_the_file(tmp_path: Path, text: str,
                                                       message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(write(tmp_path, text))


def test_environment_pairs() -> None:
    table = shards.from_env({"SIDEQUEST_SHARDS": "reports=redis://h2:6379/0  eu=redis://h3/1",
                             "SIDEQUEST_SHARD_QUEUES": "exports=eu"})
    assert table is not None
    assert table.urls == {"reports": "redis://h2:6379/0", "eu": "redis://h3/1"}
    assert table.shard_of("exports") == "eu"
    with pytest.raises(ConfigError, match=r"\$SIDEQUEST_SHARDS: 'reports' is not NAME=VALUE"):
        shards.from_env({"SIDEQUEST_SHARDS": "reports"})
    # A route's mistake is in $SIDEQUEST_SHARD_QUEUES, and the message says so.
    with pytest.raises(ConfigError, match=r"^\$SIDEQUEST_SHARD_QUEUES: shard_queues routes queue "
                       r"'exports' to shard 'report', which is not defined.*did you mean"):
        shards.from_env({"SIDEQUEST_SHARDS": "reports=redis://h2:6379/0",
                         "SIDEQUEST_SHARD_QUEUES": "exports=report"})


@pytest.mark.parametrize(("env", "says"), [
    # Joined with commas, the first shard's URL swallowed the rest, and mail was undefined.
    ({"SIDEQUEST_SHARDS": "reports=redis://h2:6672/0,mail=redis://h2:6672/1"},
     r"\$SIDEQUEST_SHARDS: the value of 'reports' holds several pairs joined by a comma"),
    # Routes too: it said queue 'reports' went to a shard named 'reports,exports=reports'.
    ({"SIDEQUEST_SHARDS": "reports=redis://h2:6379/0",
      "SIDEQUEST_SHARD_QUEUES": "reports=reports,exports=reports"},
     r"\$SIDEQUEST_SHARD_QUEUES: the value of 'reports' holds several pairs joined by a comma"
     r"; separate them with spaces, e.g. 'reports=reports mail=...'"),
    # The last one silently won: the queue went to the default shard.
    ({"SIDEQUEST_SHARDS": "reports=redis://h2:6379/0",
      "SIDEQUEST_SHARD_QUEUES": "reports=reports reports=default"},
     r"\$SIDEQUEST_SHARD_QUEUES: 'reports' is given twice"),
    ({"SIDEQUEST_SHARD_QUEUES": "reports"},
     r"\$SIDEQUEST_SHARD_QUEUES: 'reports' is not NAME=VALUE; .* such as 'reports=reports'"),
])
def test_environment_pairs_that_would_be_misread(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        shards.from_env(env)


@pytest.mark.parametrize("url", [
    "redis+cluster://h1:7000,h2:7001",
    "redis+sentinel://s1:26379,s2:26379/mymaster",
    "redis://:p,w=1@h2:6379/0",  # a password may hold both, unencoded
])
def test_urls_with_commas_are_one_value(url: str) -> None:
    table = shards.from_env({"SIDEQUEST_SHARDS": f"a={url}"}, "redis://elsewhere:6379/0")
    assert table is not None and table.urls["a"] == url


def test_a_shard_twice_is_refused_without_showing_its_passwords() -> None:
    with pytest.raises(ConfigError, match="'a' is given twice") as caught:
        shards.from_env({"SIDEQUEST_SHARDS": "a=redis://:secret1@h2/0 a=redis://:secret2@h3/0"})
    assert "secret" not in str(caught.value)


def test_shards_on_one_cluster_may_share_its_url() -> None:
    """On a Redis Cluster each shard's keys carry its name in their hash tag."""
    url = "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
    table = shards.build({"a": url, "b": url}, {"q": "b"})
    assert table is not None and table.urls == {"a": url, "b": url}


@pytest.mark.parametrize(("first", "second"), [
    ("redis://127.0.0.1:6492/0", "redis://localhost:6492/0"),
    ("redis://[::1]:6492/0", "redis://LOCALHOST:6492"),
    ("redis://h2/0", "rediss://user:pw@H2:6379/0"),
    ("redis://h2:6379/1", "redis://h2:6379/0?db=1"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock?db=0"),
    ("redis+sentinel://a:26379,b:26379/main/0", "redis+sentinel://b,a/main"),
])
def test_spellings_of_one_redis_are_one_server(first: str, second: str) -> None:
    assert urls.server_of(first) == urls.server_of(second)


@pytest.mark.parametrize(("first", "second"), [
    ("redis://h2:6379/0", "redis://h2:6379/1"),  # another database: keys apart
    ("redis://h2:6379/0", "redis://h3:6379/0"),
    ("redis://localhost:6379/0", "redis://localhost:6380/0"),
    ("redis+sentinel://a/main/0", "redis+sentinel://a/other/0"),
])
def test_other_servers_or_databases_differ(first: str, second: str) -> None:
    assert urls.server_of(first) != urls.server_of(second)


def test_a_shard_is_checked_against_the_default_url() -> None:
    with pytest.raises(ConfigError, match=r"shard 'a' \(redis://127.0.0.1:6491/0\) names the "
                                          r"same Redis as the default shard \(redis_url "
                                          r"redis://localhost:6491\)"):
        shards.build({"a": "redis://127.0.0.1:6491/0"}, {}, default="redis://localhost:6491")
    url = "redis+cluster://10.0.0.1:7000"  # on a cluster the tags keep them apart
    assert shards.build({"a": url}, {}, default=url) is not None
    assert shards.build({"a": "redis://h:6379/1"}, {}, default="redis://h:6379/0") is not None
