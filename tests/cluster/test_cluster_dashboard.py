"""The dashboard on a Redis Cluster: its main pages answer and show the cluster's data."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from cluster.conftest import identity_of
from fault.harness import Ledger, Worker
from helpers import wait_for
from sidequest import Job
from sidequest.api import Queue, ScheduledSet
from sidequest.web import create_app
from web_helpers import PASSWORD, Client, failed, job


class Work(Job):
    name = "fault.Work"


def test_main_pages_answer_with_the_clusters_jobs(
        rc: redis.RedisCluster, spawn: Callable[..., Worker], ledger: Ledger) -> None:
    running = Work.perform_async(30)  # busy while the pages are read
    worker = spawn("-c", "2")
    wait_for(lambda: ledger.counts("start")[running] == 1, 30, "the long job to start")
    # The busy page reads the work hash that heartbeats write: wait for the one after the start.
    owner = wait_for(lambda: identity_of(worker, rc), 30, "the worker's first heartbeat")
    wait_for(lambda: running.encode() in b"".join(rc.hvals(f"{{sq}}{owner}:work")), 30,
             "the heartbeat that lists the running job")
    queued, scheduled = Work.set(queue="later").perform_async(0), Work.perform_in(3600, 0)
    rc.zadd("{sq}retry", {failed("r" * 24): time.time() + 3600})
    rc.zadd("{sq}dead", {failed("d" * 24): time.time()})
    rc.sadd("{sq}queues", "parked")
    rc.lpush("{sq}queue:parked", job("q" * 24, queue="parked"))
    app = create_app(password=PASSWORD, secret_key="test-secret-" + "x" * 32)
    with Client(app) as client:
        assert client.login().status_code == 303
        pages = {path: client.get(path) for path in
                 ("/", "/queues", "/queues/parked", "/retries", "/scheduled", "/morgue",
                  "/busy")}
    for path, response in pages.items():
        assert response.status_code == 200, f"{path}: {response.status_code}"
    assert "parked" in pages["/queues"].text and "later" in pages["/queues"].text
    assert "q" * 24 in pages["/queues/parked"].text
    assert "r" * 24 in pages["/retries"].text
    assert scheduled in pages["/scheduled"].text
    assert "d" * 24 in pages["/morgue"].text
    assert owner and owner in pages["/busy"].text and running in pages["/busy"].text
    assert 'data-stat="enqueued">2<' in pages["/"].text, queued
    version = rc.info(target_nodes=rc.get_node_from_key("{sq}queues"))["redis_version"]
    assert f"<dd>{version}</dd>" in pages["/"].text  # the primary serving {sq}


def test_queues_and_sets_are_cleared_on_a_cluster(rc: redis.RedisCluster) -> None:
    """Clearing renames the key aside first (a job pushed meanwhile is not cleared
    unrecorded): a rename in one slot, which a cluster allows."""
    Work.set(queue="scratch").perform_async(0)
    Work.set(queue="later").perform_async(0)
    Work.perform_in(3600, 0)
    rc.zadd("{sq}retry", {failed("r" * 24): time.time() + 3600})
    Queue("scratch").clear()
    assert not rc.exists("{sq}queue:scratch")
    ScheduledSet().clear()
    assert not rc.exists("{sq}schedule")
    app = create_app(password=PASSWORD, secret_key="test-secret-" + "x" * 32)
    with Client(app) as client:
        assert client.login().status_code == 303
        assert client.submit("/retries/all/delete").status_code == 303
        assert client.submit("/queues/later/delete").status_code == 303
        assert client.submit("/retries/all/delete").status_code == 303  # nothing left
    assert not rc.exists("{sq}retry") and not rc.exists("{sq}queue:later")
    assert not rc.sismember("{sq}queues", "later")
