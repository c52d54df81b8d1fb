"""Retry all and Kill all on a cluster whose primary has never run the move script (a fresh
node, a promoted replica): the pipeline cannot load it, so it is loaded first."""

from __future__ import annotations

import json
import time

import redis

from cluster.conftest import Cluster
from sidequest.api import DeadSet, RetrySet


def _failed(jid: str) -> str:
    return json.dumps({"class": "bulk.Work", "args": [], "queue": "default", "jid": jid,
                       "retry": True, "error_class": "RuntimeError", "error_message": "x",
                       "failed_at": time.time(), "retry_count": 0})


def test_retry_all_and_kill_all_load_their_script_first(cluster: Cluster, cluster_url: str,
                                                         rc: redis.RedisCluster) -> None:
    rc.zadd("{sq}retry", {_failed(f"{i:024x}"): time.time() + 600 for i in range(5)})
    for port in cluster.primaries():
        cluster.node(port).script_flush()
    assert RetrySet().kill_all() == 5
    assert DeadSet().size == 5 and RetrySet().size == 0
    for port in cluster.primaries():
        cluster.node(port).script_flush()
    assert DeadSet().retry_all() == 5
    assert rc.llen("{sq}queue:default") == 5
