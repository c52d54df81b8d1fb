"""The worker's start-up check of Redis's eviction policy asks the primary holding
Sidequest's keys: it asked the client's default node, so it missed an evicting primary of
ours and warned of another's."""

from __future__ import annotations

import logging

import pytest

from cluster.conftest import Cluster, slot_owner
from sidequest import connection
from sidequest.worker.redis_wait import check_redis


def test_the_eviction_warning_reads_the_primary_of_our_keys(
        cluster: Cluster, cluster_url: str, caplog: pytest.LogCaptureFixture) -> None:
    owner = slot_owner(cluster)
    assert owner is not None
    others = [port for port in cluster.primaries() if port != owner]
    try:
        for port in others:  # every other primary evicts: nothing to say of ours
            cluster.node(port).config_set("maxmemory-policy", "allkeys-lru")
        with caplog.at_level(logging.WARNING, "sidequest"):
            check_redis(connection.client())
        assert "maxmemory-policy" not in caplog.text
        cluster.node(owner).config_set("maxmemory-policy", "volatile-lru")
        with caplog.at_level(logging.WARNING, "sidequest"):
            check_redis(connection.client())
        assert "maxmemory-policy is 'volatile-lru'" in caplog.text
    finally:
        for port in cluster.primaries():
            cluster.node(port).config_set("maxmemory-policy", "noeviction")
