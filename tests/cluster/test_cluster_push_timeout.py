"""A push whose reply does not come in time (the {sq} primary hung: a pause, a partition) is
not sent again: the cluster client resent it after a timeout, and a job was written twice.
It raises RedisUnavailable saying the job may have been enqueued, with its jid, as on a plain
Redis; the primary, back, holds one copy."""

from __future__ import annotations

import os
import signal

import pytest
import redis

import sidequest
from cluster.conftest import Cluster, slot_owner
from sidequest import Job, RedisUnavailable


class Work(Job):
    name = "pushtimeout.Work"


def test_a_push_whose_reply_times_out_is_not_sent_again(cluster: Cluster,
                                                         cluster_url: str) -> None:
    # Shorter than the cluster's node timeout (1 s) twice over: no failover meanwhile.
    sidequest.configure(cluster_url, socket_timeout=0.2)
    assert Work.perform_async(0)  # the connection to the {sq} primary is open
    owner = slot_owner(cluster)
    assert owner is not None
    pid = cluster.procs[owner].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(RedisUnavailable) as info:
            Work.set(queue="dup").perform_async(1)
    finally:
        os.kill(pid, signal.SIGCONT)
    jid = str(info.value).partition("(jid ")[2].partition(")")[0]
    assert "so it may have been enqueued; check for it (jid" in str(info.value) and jid
    node = cluster.node(owner)
    node.ping()  # the paused server has read what was sent before it: answered in order
    payloads = node.lrange("{sq}queue:dup", 0, -1)
    assert len(payloads) == 1 and jid.encode() in payloads[0]


def test_the_cluster_client_does_not_resend(cluster_url: str) -> None:
    client = sidequest.connection.client()
    assert isinstance(client, redis.RedisCluster) and client.retry.get_retries() == 0
