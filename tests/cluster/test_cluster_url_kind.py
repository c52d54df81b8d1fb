"""A Redis URL of the wrong kind: ``redis://`` pointed at a Redis Cluster node, or
``redis+cluster://`` pointed at a plain Redis. Each is a configuration error saying which URL
to write, from a push, from the worker at start (exit 2, no traceback, no endless wait) and
from the dashboard, rather than a raw MovedError or RedisClusterException."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

import sidequest
from apps.fault_jobs import Work
from cluster.conftest import Cluster
from sidequest.errors import ConfigError
from sidequest.web import create_app
from web_helpers import PASSWORD, Client

TESTS = Path(__file__).resolve().parents[1]
#: What the error says for a cluster node behind redis://, and for a plain Redis behind
#: redis+cluster://.
IS_A_NODE = (r"Redis at redis://127\.0\.0\.1:\d+/0 is a Redis Cluster node \(cluster mode is "
             r"enabled on it\), which a plain redis:// URL cannot use: use a redis\+cluster:// "
             r"URL")
IS_PLAIN = (r"Redis at redis\+cluster://127\.0\.0\.1:\d+ is not a Redis Cluster node \(cluster "
            r"mode is not enabled on it\), so a redis\+cluster:// URL cannot use it: use a "
            r"redis:// URL")


def worker(url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """``sidequest -r apps.fault_jobs --redis-url URL`` run to its end (a minute at most)."""
    env = {**os.environ, "PYTHONPATH": str(TESTS), "FAULT_LEDGER": os.devnull}
    return subprocess.run([sys.executable, "-m", "sidequest", "-r", "apps.fault_jobs",
                           "--redis-url", url, *flags], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.fixture
def node_url(cluster: Cluster, cluster_url: str, rc: redis.RedisCluster) -> str:
    """A plain URL at a primary that does not serve the slot of Sidekiq's ``queues`` key (nor
    of ``processes``), so a push and the first heartbeat meet MOVED."""
    taken = {rc.get_node_from_key(key).port for key in ("queues", "processes")}
    port = next(p for p in cluster.primaries() if p not in taken)
    return f"redis://127.0.0.1:{port}/0"


def as_cluster(plain_url: str) -> str:
    """``redis://127.0.0.1:PORT/0`` as a cluster URL at the same (plain) server."""
    return "redis+cluster://" + plain_url.removeprefix("redis://").removesuffix("/0")


def test_a_push_by_redis_url_to_a_cluster_node_says_so(node_url: str) -> None:
    sidequest.configure(node_url)
    with pytest.raises(ConfigError, match=IS_A_NODE):
        Work.perform_async(0)
    with pytest.raises(ConfigError, match=IS_A_NODE):  # a push through a pipeline, too
        Work.set(store_result=True).perform_async(0)


@pytest.mark.parametrize("flags", [(), ("-P", "2")])
def test_a_worker_by_redis_url_at_a_cluster_node_exits_2(node_url: str,
                                                         flags: tuple[str, ...]) -> None:
    done = worker(node_url, *flags)
    assert done.returncode == 2, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "is a Redis Cluster node (cluster mode" in said and "redis+cluster://" in said
    assert "Traceback" not in said and "waiting for Redis" not in said


def test_a_push_by_redis_url_to_the_node_serving_its_keys_writes_nothing(
        cluster: Cluster, rc: redis.RedisCluster) -> None:
    """A node that serves the slots of the push's untagged keys answers no MOVED: without a
    check of its own the push would land there, where no cluster worker reads."""
    port = rc.get_node_from_key("queue:default").port
    sidequest.configure(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(ConfigError, match=IS_A_NODE):
        Work.perform_async(0)
    untagged = [key for p in cluster.primaries() for key in cluster.node(p).keys("*")
                if not key.startswith(b"{sq")]
    assert untagged == []


def test_a_push_by_cluster_url_to_a_plain_redis_says_so(redis_url: str) -> None:
    sidequest.configure(as_cluster(redis_url))
    with pytest.raises(ConfigError, match=IS_PLAIN):
        Work.perform_async(0)


@pytest.mark.parametrize("flags", [(), ("-P", "2")])
def test_a_worker_by_cluster_url_at_a_plain_redis_exits_2(redis_url: str,
                                                          flags: tuple[str, ...]) -> None:
    done = worker(as_cluster(redis_url), *flags)
    assert done.returncode == 2, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "is not a Redis Cluster node (cluster mode is not enabled on it)" in said
    assert "Traceback" not in said


def said_before_login(page: Any, caplog: pytest.LogCaptureFixture, problem: str) -> None:
    """The login form tells a visitor nothing of the deployment: one sentence; the server's
    log says what is wrong with the URL and what to write instead."""
    assert page.status_code == 500
    assert page.text == "The dashboard cannot use its Redis; its server's log says why."
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert re.search(problem, logged), logged


def test_the_dashboard_by_cluster_url_at_a_plain_redis_says_so(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    sidequest.configure(as_cluster(redis_url))
    app = create_app(password=PASSWORD, secret_key="test-secret-" + "x" * 32)
    with Client(app) as client:
        page = client.login()  # the login limiter is the first to reach Redis
    said_before_login(page, caplog, IS_PLAIN)


def test_the_dashboard_by_redis_url_at_a_cluster_node_says_so(
        node_url: str, caplog: pytest.LogCaptureFixture) -> None:
    sidequest.configure(node_url)
    app = create_app(password=PASSWORD, secret_key="test-secret-" + "x" * 32)
    with Client(app) as client:
        page = client.login()
    said_before_login(page, caplog, IS_A_NODE.replace("MOVED", "(MOVED|CROSSSLOT)"))


@pytest.fixture
def locked_node(tmp_path: Path) -> Any:
    """A one-node cluster (every slot on it) that wants the password "s3cret"."""
    from bench.local_cluster import cluster_port

    from helpers import wait_for

    port = cluster_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled",
         "yes", "--cluster-config-file", str(tmp_path / "nodes.conf"), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--requirepass", "s3cret"],
        stdout=subprocess.DEVNULL)
    try:
        node = redis.Redis(port=port, password="s3cret", decode_responses=True)
        wait_for(lambda: _answers(node), what="the node")
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_for(lambda: node.cluster("info")["cluster_state"] == "ok", what="its slots")
        yield port
    finally:
        server.terminate()
        server.wait(10)


def _answers(node: redis.Redis) -> bool:
    try:
        return bool(node.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.parametrize(("auth", "says"), [
    (":wrong@", r"refused the user name or password in the URL \(invalid username-password"),
    ("", r"requires a password, and the URL gives none: put it in the URL, as "
         r"redis\+cluster://:PASSWORD@HOST:PORT,HOST:PORT")])
def test_a_cluster_that_refuses_the_password_is_a_setting_to_fix(
        locked_node: int, auth: str, says: str) -> None:
    """It raised redis-py's RedisClusterException (no RedisError) with its traceback: from a
    push, from the worker (exit 1), and as a bare 500 page from the dashboard."""
    url = f"redis+cluster://{auth}127.0.0.1:{locked_node}"
    sidequest.configure(url)
    with pytest.raises(ConfigError, match=says):
        Work.perform_async(0)
    done = worker(url)
    said = done.stdout + done.stderr
    assert done.returncode == 2 and re.search(says, said), said
    assert "Traceback" not in said and "wrong" not in said  # the password is not shown
    sidequest.configure(f"redis+cluster://:s3cret@127.0.0.1:{locked_node}")
    assert Work.perform_async(0)  # the right one works
