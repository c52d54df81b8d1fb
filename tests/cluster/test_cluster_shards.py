"""Shards on one Redis Cluster: each shard's keys carry their own hash tag ({sq} for the
default shard, {sq:<name>} for another), so the shards' slots sit on different primaries
and one cluster carries their load side by side. A worker given queues of every shard runs
each shard's jobs in a process of its own; retries, stats and the processes set stay on the
job's shard; the limiters stay on the default shard; `sidequest stats` and the dashboard
show every shard and their sum."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import sidequest
import sidequest.connection
from apps.cluster_jobs import Concurrent, two_at_once
from apps.fault_jobs import Work
from cluster.conftest import Cluster, dashboard
from fault.harness import ROOT, Ledger, Worker, write_config
from helpers import wait_for
from sidequest import Job, keys

CANDIDATES = ("reports", "exports", "eu", "us", "bulk", "mail", "media", "search", "audit")


class Fails(Job):
    name = "fault.ShardFails"  # unknown to the worker: it fails, and is set for a retry

    def perform(self) -> None:
        pass


def primary_of(rc: redis.RedisCluster, tag: str) -> str:
    return str(rc.get_node_from_key(tag + "queues").name)


def spread_names(rc: redis.RedisCluster) -> list[str]:
    """Two shard names whose tags hash to the two primaries that {sq} is not on."""
    taken = {primary_of(rc, "{sq}")}
    names = []
    for name in CANDIDATES:
        node = primary_of(rc, "{sq:" + name + "}")
        if node not in taken:
            taken.add(node)
            names.append(name)
    assert len(names) == 2, f"no two of {CANDIDATES} hash to the other two primaries"
    return names


@pytest.fixture
def shards(cluster_url: str, rc: redis.RedisCluster) -> Iterator[dict[str, str]]:
    """Shards A and B on the same cluster as the default shard, each with a queue of its
    name; the environment a worker or the CLI needs for them."""
    a, b = spread_names(rc)
    env = {"SIDEQUEST_SHARDS": f"{a}={cluster_url} {b}={cluster_url}",
           "SIDEQUEST_SHARD_QUEUES": f"{a}={a} {b}={b}"}
    sidequest.configure(redis_url=cluster_url, shards={a: cluster_url, b: cluster_url},
                        shard_queues={a: a, b: b})
    yield env
    sidequest.connection.reset()


def all_keys(cluster: Cluster) -> list[bytes]:
    return [k for port in cluster.primaries() for k in cluster.node(port).keys("*")]


def test_each_shard_of_a_cluster_has_its_own_slot_and_primary(
        cluster: Cluster, rc: redis.RedisCluster, shards: dict[str, str],
        cluster_url: str, tmp_path: Path) -> None:
    a, b = (pair.partition("=")[0] for pair in shards["SIDEQUEST_SHARDS"].split())
    tags = {"default": "{sq}", a: "{sq:" + a + "}", b: "{sq:" + b + "}"}
    jids = {"default": Work.perform_bulk([[0]] * 6),
            a: Work.set(queue=a).perform_bulk([[0]] * 6),
            b: Work.set(queue=b).perform_bulk([[0]] * 6)}
    for shard, tag in tags.items():
        assert rc.llen(tag + "queue:" + (shard if shard != "default" else "default")) == 6
    assert len({primary_of(rc, tag) for tag in tags.values()}) == 3
    failing = Fails.set(queue=a).perform_async()
    limited = Concurrent.set(queue=b).perform_async(0)

    ledger = Ledger(tmp_path / "ledger.jsonl")
    worker = Worker(cluster_url, ledger.path, write_config(tmp_path / "w.toml"), tmp_path,
                    "-r", "apps.cluster_jobs", "-q", "default", "-q", a, "-q", b, "-c", "3",
                    env=shards)
    try:
        wait_for(lambda: all(rc.scard(tag + "processes") == 1 for tag in tags.values()), 30,
                 "a worker process registered on each shard")
        wait_for(lambda: ledger.done_count() >= 18, 30, "the 18 jobs of the three shards")
        report = ledger.check([j for part in jids.values() for j in part])
        assert not report.lost and not report.duplicates, report.text()
        pids = {e[1]: e[3] for e in ledger.entries() if e[0] == "done"}
        by_shard = {shard: {pids[j] for j in part} for shard, part in jids.items()}
        assert all(len(p) == 1 for p in by_shard.values()), by_shard  # one process a shard
        assert len(set.union(*by_shard.values())) == 3
        # The retry, the counts and the limiter: the first two on the job's shard, the
        # limiter where every shard's jobs share it.
        wait_for(lambda: rc.zcard(tags[a] + "retry") == 1, 30, "the failed job's retry")
        assert json.loads(rc.zrange(tags[a] + "retry", 0, -1)[0])["jid"] == failing
        assert rc.zcard("{sq}retry") == 0 and rc.zcard(tags[b] + "retry") == 0
        wait_for(lambda: ledger.counts("out")[limited] == 1, 30, "the limited job to run")
        assert rc.zscore("{sq}sq:limiters", f"concurrent|2|30|{two_at_once.name}") is not None
        wait_for(lambda: [int(rc.get(tag + "stat:processed") or 0) for tag in tags.values()]
                 == [6, 7, 7], 15, "each shard's processed count (a's failure counts)")
        out = run_stats(cluster_url, shards)
        assert "All 3 shards" in out and "Processed: 20" in out, out
        pages = dashboard(f"/shards/{a}/retries", "/")
        assert failing in pages[f"/shards/{a}/retries"]
        assert "<h2>Shards</h2>" in pages["/"]
    finally:
        assert worker.reap() == 0, worker.log()
    assert all(rc.scard(tag + "processes") == 0 for tag in tags.values())
    untagged = [k for k in all_keys(cluster) if not k.startswith(tuple(
        t.encode() for t in tags.values()))]
    assert not untagged, f"keys outside the three shards' tags: {untagged}"


def test_key_names_follow_the_shard_the_code_works_on(shards: dict[str, str]) -> None:
    a = shards["SIDEQUEST_SHARDS"].split()[0].partition("=")[0]
    assert keys.QUEUES == "{sq}queues" and keys.queue("x") == "{sq}queue:x"
    with sidequest.connection.on_shard(a):
        assert [keys.QUEUES, keys.inprogress("p")] == [
            f"{{sq:{a}}}queues", f"{{sq:{a}}}sq:inprogress:p"]
        # The limiters and the dashboard's logins live on the default shard, for all.
        assert keys.limiter("l") == "{sq}sq:limiter:l" and keys.LIMITERS == "{sq}sq:limiters"
        assert keys.web_session("s") == "{sq}sq:web:session:s"
    assert keys.RETRY == "{sq}retry"


def run_stats(cluster_url: str, shards: dict[str, str]) -> str:
    env = {**os.environ, "REDIS_URL": cluster_url, **shards}
    env.pop("SIDEQUEST_REDIS_URL", None)
    proc = subprocess.run([sys.executable, "-m", "sidequest", "stats"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout

