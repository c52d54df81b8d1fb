"""A push while the cluster cannot serve Sidequest's slot says so in Sidequest's own error.

A one-node cluster of the test's own, not the session's six nodes: taking a slot away from
a node is not something a shared cluster is guaranteed to recover from in step."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bench.local_cluster import cluster_port

import sidequest
from helpers import wait_for
from redis_server import free_port
from sidequest import Job, RedisUnavailable, connection


class Work(Job):
    name = "down.Work"


@pytest.fixture
def one_node_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], redis.Redis]]:
    """A one-node cluster serving every slot, Sidequest configured on it: its process and
    a client of the node."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is missing: run `make redis`")
    proc, node = _start(executable, tmp_path)
    try:
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_for(lambda: node.cluster("info").get("cluster_state") == "ok", 10,
                 "the one-node cluster to be ok")
        port = node.connection_pool.connection_kwargs["port"]
        sidequest.configure(f"redis+cluster://127.0.0.1:{port}")
        yield proc, node
    finally:
        connection.reset()
        node.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture
def one_node(one_node_process: tuple[subprocess.Popen[bytes], redis.Redis]) -> redis.Redis:
    return one_node_process[1]


def _start(executable: str, directory: Path) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    """A cluster-enabled node answering PING; another port if the free one was taken."""
    for attempt in range(3):
        port = cluster_port()  # its cluster bus port (+10000) must exist and be free too
        with open(directory / "redis.log", "ab") as log:
            proc = subprocess.Popen(
                [executable, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled",
                 "yes", "--cluster-config-file", str(directory / f"nodes-{port}.conf"),
                 "--save", "", "--appendonly", "no", "--dir", str(directory)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        node = redis.Redis("127.0.0.1", port, socket_timeout=2)
        wait_for(lambda p=proc, n=node: p.poll() is not None or _answers(n), 10,
                 "the node to start")
        if proc.poll() is None:
            return proc, node
        node.close()
        if attempt == 2:
            raise RuntimeError((directory / "redis.log").read_text()[-2000:])
    raise AssertionError("unreachable")


def _answers(node: redis.Redis) -> bool:
    try:
        return bool(node.ping())
    except redis.RedisError:
        return False


def test_a_push_to_an_unserved_slot_raises_redis_unavailable(one_node: redis.Redis) -> None:
    assert Work.perform_async(1)
    slot = one_node.cluster("keyslot", "{sq}queues")
    one_node.execute_command("CLUSTER", "DELSLOTS", slot)  # nobody serves it: CLUSTERDOWN
    with pytest.raises(RedisUnavailable, match="not enqueued") as info:
        Work.perform_async(2)
    assert "Redis Cluster" in str(info.value)


def _take_the_slot_away(node: redis.Redis) -> None:
    node.execute_command("CLUSTER", "DELSLOTS", node.cluster("keyslot", "{sq}queues"))


def test_stats_while_the_slot_is_unserved_fail_instead_of_reading_zeros(
        one_node: redis.Redis) -> None:
    # Read as zeros, an outage looked like empty queues to a monitor.
    from sidequest.api import Stats

    Work.perform_bulk([[i] for i in range(5)])
    assert Stats().enqueued == 5
    _take_the_slot_away(one_node)
    with pytest.raises(redis.RedisError, match=r"CLUSTERDOWN|cluster|slot not served"):
        Stats()
    port = one_node.connection_pool.connection_kwargs["port"]
    out = subprocess.run([sys.executable, "-m", "sidequest", "stats", "--redis-url",
                          f"redis+cluster://127.0.0.1:{port}"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 1 and "Enqueued: 0" not in out.stdout, out.stdout + out.stderr
    assert "cannot read" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_the_dashboard_while_the_slot_is_unserved_answers_its_outage_page(
        one_node: redis.Redis) -> None:
    from sidequest.web import create_app
    from web_helpers import Client

    _take_the_slot_away(one_node)
    with Client(create_app(insecure=True), raise_server_exceptions=False) as client:
        for path in ("/", "/queues", "/stats"):
            answer = client.get(path, headers={"Accept": "text/html"})
            assert answer.status_code == 503, f"{path}: {answer.status_code}"


@pytest.mark.parametrize("outage", ["slot unserved", "node gone"])
def test_a_logged_in_user_sees_the_outage_page(one_node: redis.Redis, outage: str) -> None:
    # The login's check in Redis raised cluster errors the guard did not expect (some are
    # no redis.RedisError at all): a bare 500.
    from sidequest.web import create_app
    from web_helpers import PASSWORD, Client

    app = create_app(password=PASSWORD, secret_key="s" * 32)
    with Client(app, raise_server_exceptions=False) as client:
        assert client.login().status_code == 303
        if outage == "slot unserved":
            _take_the_slot_away(one_node)
        else:
            with contextlib.suppress(redis.ConnectionError):
                one_node.shutdown(nosave=True)
        page = client.get("/queues", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 503, page.status_code
        # The URL is right: on a cluster, the likely cause is a failover under way.
        assert ("its replica takes over after the cluster's node timeout"
                in " ".join(page.text.split()))
        assert client.get("/static/app.css").status_code == 200


def test_a_cluster_url_no_node_answers_is_an_outage(tmp_path: Path) -> None:
    # No node to read the slot map from: a push says RedisUnavailable, a worker waits (as
    # for a plain Redis that is down) instead of crashing.
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    sidequest.configure(url)
    try:
        with pytest.raises(RedisUnavailable, match="no node of the cluster answers"):
            Work.perform_async(1)
    finally:
        connection.reset()
    worker = subprocess.Popen(
        [sys.executable, "-m", "sidequest", "-r", "sidequest", "--redis-url", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        while "waiting for Redis" not in line and line:
            line = worker.stdout.readline()
        assert "no node of the cluster answers" in line, line
        assert worker.poll() is None, "it waits"
    finally:
        worker.kill()
        worker.wait(10)


def test_no_node_answering_is_a_connection_error_every_outage_loop_waits_out(
        one_node_process: tuple[subprocess.Popen[bytes], redis.Redis]) -> None:
    """redis-py says so with exceptions that are no RedisError: the worker's loops, which
    wait out an outage on RedisError, crashed their threads instead."""
    proc, _ = one_node_process
    client = connection.client()
    assert client.llen("{sq}queue:default") == 0
    proc.kill()
    proc.wait(10)
    for attempt in (lambda: client.llen("{sq}queue:default"),
                    lambda: client.pipeline(transaction=False).llen("{sq}queues").execute()):
        with pytest.raises(redis.RedisError):
            attempt()
