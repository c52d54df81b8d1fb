"""The shared Redis client is replaced only when the Redis it talks to changes: closing it
cuts the commands that other threads have in flight on it (``sidequest dev`` serves the
dashboard from a thread while the worker starts and settles its Redis). No Redis is needed:
making a client connects nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidequest import connection

URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def configured() -> Iterator[None]:
    connection.configure(URL)
    try:
        yield
    finally:
        connection.reset()


def test_naming_the_same_redis_keeps_the_client(configured: None) -> None:
    shared = connection.client()
    connection.set_url(URL)
    connection.use_shard("default")
    assert connection.client() is shared


def test_another_redis_gets_a_new_client(configured: None) -> None:
    shared = connection.client()
    connection.set_url("redis://127.0.0.1:2/0")
    assert connection.client() is not shared
    assert connection.url() == "redis://127.0.0.1:2/0"


def test_another_home_shard_gets_its_own_client() -> None:
    connection.configure(URL, shards={"eu": "redis://127.0.0.1:2/0"}, shard_queues={"x": "eu"})
    try:
        shared = connection.client()
        connection.use_shard("eu")
        assert connection.client() is not shared
        assert connection.url() == "redis://127.0.0.1:2/0"
    finally:
        connection.reset()


def test_a_shard_client_is_followed_through_a_fork_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # A forked web worker's inherited Sentinel client of a shard must start the thread that
    # follows its failovers, as the default client's does.
    from sidequest import sentinel_watch

    asked: list[str] = []
    monkeypatch.setattr(sentinel_watch.watch, "running", lambda: asked.append("running"))
    connection.configure(URL, shards={"eu": "redis://127.0.0.1:2/0"}, shard_queues={"x": "eu"})
    try:
        with connection.on_shard("eu"):
            connection.client()
        assert asked, "no check that the Sentinel watcher runs"
        asked.clear()
        connection.client_for("eu")
        assert asked
    finally:
        connection.reset()


def test_a_settings_url_over_the_apps_own_is_said(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # A leftover ./sidequest.toml sent the worker to another Redis than the Flask app (its
    # SIDEQUEST_REDIS_URL) pushed to, without a word: the jobs waited there unseen.
    from sidequest import runner

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SIDEQUEST_REDIS_URL", raising=False)
    caplog.set_level("WARNING", logger="sidequest")
    try:
        connection.reset()
        runner._warn_if_overriding("redis://127.0.0.1:2/1")  # nothing named before: quiet
        connection.configure("redis://127.0.0.1:1/0")  # what the application's code did
        runner._warn_if_overriding("redis://127.0.0.1:1/0")  # the same: quiet
        assert not caplog.messages
        runner._warn_if_overriding("redis://127.0.0.1:2/1")
    finally:
        connection.reset()
    (said,) = caplog.messages
    assert said.startswith("Redis: using redis://127.0.0.1:2/1 (redis_url of the settings"), said
    assert "not redis://127.0.0.1:1/0, which the application or the environment named" in said
