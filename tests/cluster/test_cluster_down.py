"""A push while the cluster cannot serve Sidequest's slot says so in Sidequest's own error.

A one-node cluster of the test's own, not the session's six nodes: taking a slot away from
a node is not something a shared cluster is guaranteed to recover from in step."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import sidequest
from helpers import wait_for
from redis_server import free_port
from sidequest import Job, RedisUnavailable, connection


class Work(Job):
    name = "down.Work"


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[redis.Redis]:
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
        yield node
    finally:
        connection.reset()
        node.close()
        proc.kill()
        proc.wait(10)


def _start(executable: str, directory: Path) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    """A cluster-enabled node answering PING; another port if the free one was taken."""
    for attempt in range(3):
        port = free_port()
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
