"""A worker started inside an application (``embed()``) says so in its heartbeat, and, as
with Sidekiq's embedded mode, only that application quiets or stops it."""

from __future__ import annotations

import json

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import testing
from sidequest.api import ProcessSet
from sidequest.config import build
from sidequest.errors import ConfigError, SidequestError
from sidequest.worker import embed

pytestmark = pytest.mark.redis


def test_an_embedded_worker_is_marked_and_refuses_remote_stops(r: redis.Redis) -> None:
    with running_worker() as launcher:
        wait_for(lambda: r.hget(launcher.identity, "info"), what="the first beat")
        info = json.loads(r.hget(launcher.identity, "info"))
        assert info["embedded"] is True
        (process,) = [p for p in ProcessSet().processes() if p.identity == launcher.identity]
        assert process.embedded
        with pytest.raises(SidequestError, match="embedded in an application"):
            process.stop()
        with pytest.raises(SidequestError, match="embedded in an application"):
            process.quiet()
        # A TERM pushed by another client (Ruby's API, an old dashboard) is ignored.
        r.lpush(f"{launcher.identity}-signals", "TERM")
        wait_for(lambda: r.llen(f"{launcher.identity}-signals") == 0, what="the signal read")
        assert not launcher.stop_requested.is_set()
        assert r.hget(launcher.identity, "quiet") == "false"


def test_a_worker_refuses_to_start_in_a_testing_mode(r: redis.Redis) -> None:
    # Its jobs' pushes would be kept in memory (fake) or run on the spot (inline) in this
    # process, never reaching Redis, and nothing would say so.
    for switch in (testing.fake, testing.inline):
        with switch(), pytest.raises(ConfigError, match=r"fake or inline mode is on.*disable"):
            embed(build(concurrency=1))
    assert r.keys("processes") == []  # it stopped before registering
    with testing.fake(), testing.disable(), running_worker() as launcher:
        wait_for(lambda: r.hget(launcher.identity, "info"), what="the first beat")
