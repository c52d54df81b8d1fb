"""A worker started inside an application (``embed()``) says so in its heartbeat, and, as
with Sidekiq's embedded mode, only that application quiets or stops it."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path

import pytest
import redis

from helpers import running_worker, wait_for
from redis_server import RedisServer, free_port
from sidequest import Job, testing
from sidequest.api import ProcessSet
from sidequest.config import build
from sidequest.errors import ConfigError, SidequestError
from sidequest.worker import embed
from sidequest.worker import launcher as launcher_module

pytestmark = pytest.mark.redis


class Tick(Job):
    def perform(self) -> None:
        pass


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


def test_an_embedded_worker_that_retires_stops_instead_of_idling_as_running(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    # Over its max_memory after a job: a `sidequest` process would exit for its supervisor
    # to start a fresh one. Embedded, nothing would act on that, and the worker would show
    # as running, heartbeating, while it took no job: it stops instead.
    with running_worker(max_memory=100) as launcher:
        wait_for(lambda: r.hget(launcher.identity, "info"), what="the first beat")
        monkeypatch.setattr(launcher_module, "rss_kb", lambda: 200 * 1024)
        Tick.perform_async()
        wait_for(launcher.stopping.is_set, what="the retired worker to stop")
        wait_for(lambda: not r.sismember("processes", launcher.identity),
                 what="its process to leave the process set")
        assert launcher.identity not in [p.identity for p in ProcessSet().processes()]
        assert r.hget(launcher.identity, "quiet") == "true"
        assert launcher.stop() is True  # the application's own stop, later: nothing to do


def test_an_embedded_start_that_fails_closes_its_metrics_port(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """Redis refused its password after the metrics port was opened: the application, which
    goes on, fixed the URL and embedded again, and found its own port taken."""
    from sidequest import connection

    guarded = RedisServer(shutil.which("redis-server") or "redis-server", tmp_path)
    guarded.start()
    port = free_port()
    try:
        guarded.client().config_set("requirepass", "right-password-1")
        connection.set_url(guarded.url.replace("redis://", "redis://:wrong@"))
        with pytest.raises(ConfigError, match="refused the user name or password"):
            embed(build(metrics_port=port, metrics_host="127.0.0.1"))
        with socket.socket() as probe:  # free again
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    finally:
        connection.reset()
        guarded.stop()


class Holds(Job):
    def perform(self) -> None:
        HOLD.wait(10)


HOLD = threading.Event()


def test_a_stopping_worker_says_so_in_its_record_while_its_jobs_finish(r: redis.Redis) -> None:
    """After Stop, the Busy page said "quiet" for up to the shutdown timeout: nothing told
    that the process was about to exit, not merely quiet."""
    HOLD.clear()
    with running_worker(timeout=10) as launcher:
        wait_for(lambda: r.hget(launcher.identity, "info"), what="the first beat")
        assert r.hget(launcher.identity, "sq_stopping") == "false"
        Holds.perform_async()
        wait_for(launcher.state.busy, what="the job to start")
        stopping = threading.Thread(target=launcher.stop)
        stopping.start()
        try:
            wait_for(lambda: r.hget(launcher.identity, "sq_stopping") == "true",
                     what="the record to say stopping")
            (process,) = [p for p in ProcessSet().processes() if p.identity == launcher.identity]
            assert process.shutting_down and process.stopping
        finally:
            HOLD.set()
            stopping.join(15)
