"""A push while the cluster cannot serve Sidequest's slot says so in Sidequest's own error."""

from __future__ import annotations

import pytest
import redis

from cluster.conftest import Cluster, slot_owner
from sidequest import Job, RedisUnavailable


class Work(Job):
    name = "down.Work"


def test_a_push_to_an_unserved_slot_raises_redis_unavailable(
        cluster: Cluster, rc: redis.RedisCluster) -> None:
    owner = slot_owner(cluster)
    assert owner is not None
    slot = rc.keyslot("{sq}queues")
    node = cluster.node(owner)
    node.execute_command("CLUSTER", "DELSLOTS", slot)  # nobody serves it: CLUSTERDOWN
    try:
        with pytest.raises(RedisUnavailable, match="not enqueued") as info:
            Work.perform_async(1)
        assert "Redis Cluster" in str(info.value)
    finally:
        node.execute_command("CLUSTER", "ADDSLOTS", slot)
        cluster.healthy()
    assert Work.perform_async(2)  # served again
