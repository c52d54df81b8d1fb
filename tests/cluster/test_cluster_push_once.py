"""A push to a Redis Cluster is sent once: a reply that comes late is not answered by a
second copy, and the redirects of a slot migration (ASK, TRYAGAIN, MOVED) resend only the
commands the cluster refused without running."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import redis

import sidequest
from cluster.conftest import Cluster, slot_owner
from sidequest import Job, RedisUnavailable, connection, keys, sending

SLOT = redis.cluster.key_slot(b"{sq}")


class Plain(Job):
    queue = "once"

    def perform(self, n: int) -> None:
        pass


class Once(Plain):
    unique_for = 60


class Stored(Plain):
    store_result = True


def _args(node: redis.Redis) -> list[Any]:
    return [json.loads(raw)["args"][0] for raw in node.lrange(keys.queue("once"), 0, -1)]


@pytest.mark.parametrize("kind", [Plain, Once, Stored], ids=["plain", "unique", "stored"])
def test_a_push_whose_reply_is_late_is_not_sent_again(
        kind: type[Plain], cluster: Cluster, cluster_url: str) -> None:
    sidequest.configure(redis_url=cluster_url, socket_timeout=0.3)
    owner = slot_owner(cluster)
    assert owner is not None
    node = cluster.node(owner)
    try:
        assert kind.perform_async(0)  # a connection to the owner, to be reused
        connections = node.info("stats")["total_connections_received"]
        node.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
        with pytest.raises(RedisUnavailable, match="may have been enqueued"):
            kind.perform_async(1)
        # A resend would have been made on a new connection (the timed-out one is closed).
        assert node.info("stats")["total_connections_received"] == connections
        node.execute_command("CLIENT", "UNPAUSE")
        assert kind.perform_async(2)
        assert _args(node).count(2) == 1 and 0 in _args(node)
    finally:
        node.execute_command("CLIENT", "UNPAUSE")
        connection.reset()


def test_pushes_during_a_slot_migration_land_once_on_the_right_node(
        cluster: Cluster, cluster_url: str) -> None:
    source = slot_owner(cluster)
    assert source is not None
    target = next(p for p in cluster.primaries() if p != source)
    src, dst = cluster.node(source), cluster.node(target)
    assert Plain.perform_async(0)
    ids = [n.execute_command("CLUSTER", "MYID") for n in (src, dst)]
    dst.execute_command("CLUSTER", "SETSLOT", SLOT, "IMPORTING", ids[0])
    src.execute_command("CLUSTER", "SETSLOT", SLOT, "MIGRATING", ids[1])
    client: Any = connection.client()
    try:
        # The queue's list is moved, the queue set is not: SADD runs on the source, LPUSH
        # is answered ASK and must be sent to the target, after ASKING. The target is left
        # out of the client's known nodes, as a node being resharded onto (no slot yet) is.
        _move(src, target, keys.queue("once"))
        client.nodes_manager.nodes_cache.pop(f"127.0.0.1:{target}")
        assert Plain.perform_async(1) and Stored.perform_async(2)
        # A unique push's script names keys on both nodes: TRYAGAIN until the migration
        # ends, so the push is refused whole, and says it was not enqueued.
        with pytest.raises(RedisUnavailable, match="not enqueued"):
            Once.perform_async(3)
        # A script call whose key has moved goes to the target after ASKING; a target new
        # to the cluster has never loaded the script: loaded there, then run once.
        dst.script_flush()
        source_code = b"return redis.call('LPUSH', KEYS[1], ARGV[1])"
        sha = hashlib.sha1(source_code).hexdigest()
        body = json.dumps({"class": "Plain", "args": [4]})
        call = ("EVALSHA", sha, 1, keys.queue("once"), body)
        assert sending.send(client, [call], {sha: source_code}) == [4]
    finally:
        for name in src.execute_command("CLUSTER", "GETKEYSINSLOT", SLOT, 1000):
            _move(src, target, name)
        for node in (dst, src, *(cluster.node(p) for p in cluster.primaries()
                                 if p not in (source, target))):
            node.execute_command("CLUSTER", "SETSLOT", SLOT, "NODE", ids[1])
    # The client's slot map still names the source: MOVED, then the new owner.
    assert Once.perform_async(5) and Plain.perform_async(6)
    assert sorted(_args(dst)) == [0, 1, 2, 4, 5, 6]
    assert slot_owner(cluster) == target


def _move(src: redis.Redis, port: int, name: Any) -> None:
    src.execute_command("MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", name)
