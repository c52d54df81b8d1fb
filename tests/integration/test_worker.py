"""The worker end to end, in process, against a real Redis: run, ack, retry, dead, schedule,
priorities, heartbeat, remote signals, graceful stop and bad payloads."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, middleware
from sidequest.retry import decode_backtrace

RAN: list[tuple[str, Any]] = []
LOCK = threading.Lock()
RELEASE = threading.Event()


def record(name: str, value: Any) -> None:
    with LOCK:
        RAN.append((name, value))


def ran(name: str) -> list[Any]:
    with LOCK:
        return [v for n, v in RAN if n == name]


@pytest.fixture(autouse=True)
def _clean() -> None:
    with LOCK:
        RAN.clear()
    RELEASE.clear()


class Echo(Job):
    def perform(self, value: Any) -> None:
        record("echo", value)


class Fails(Job):
    retry = 2
    backtrace = True
    exhausted: list[str] = []

    def perform(self, value: Any) -> None:
        raise ValueError(f"bad value {value}")

    @classmethod
    def retries_exhausted(cls, payload: dict[str, Any], exc: BaseException) -> None:
        record("exhausted", payload["jid"])


class Blocks(Job):
    def perform(self, seconds: float) -> None:
        record("started", seconds)
        RELEASE.wait(seconds)
        record("finished", seconds)


class Priority(Job):
    def perform(self, tag: str) -> None:
        record("priority", tag)


def payloads(r: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(m) for m in r.zrange(key, 0, -1)]


def test_runs_jobs_and_acknowledges_them(r: redis.Redis) -> None:
    Echo.perform_bulk([[i] for i in range(200)])
    with running_worker(concurrency=4) as worker:
        wait_for(lambda: len(ran("echo")) == 200, what="200 jobs")
        wait_for(lambda: r.llen(f"sq:inprogress:{worker.identity}") == 0, what="acks")
        wait_for(lambda: r.get("stat:processed") == "200", what="stats flush")
    assert sorted(ran("echo")) == list(range(200))
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert r.get(f"stat:processed:{day}") == "200"
    assert r.llen("queue:default") == 0


def test_failure_goes_to_retry_with_sidekiq_fields(r: redis.Redis) -> None:
    jid = Fails.perform_async(1)
    with running_worker():
        (job,) = wait_for(lambda: payloads(r, "retry"), what="retry entry")
        score = r.zscore("retry", r.zrange("retry", 0, 0)[0])
        wait_for(lambda: r.get("stat:failed") == "1", what="failed counter")
    assert job["jid"] == jid and job["retry_count"] == 0
    assert job["error_class"] == "ValueError" and job["error_message"] == "bad value 1"
    assert isinstance(job["failed_at"], float) and "retried_at" not in job
    assert 15 <= score - job["failed_at"] <= 15 + 9 + 1  # count**4 + 15 + rand(10)*(count+1)
    lines = decode_backtrace(job["error_backtrace"])
    assert "in `perform'" in lines[0] and "test_worker.py" in lines[0]


def test_retries_then_dead_and_hook(r: redis.Redis) -> None:
    jid = Fails.perform_async(2)
    with running_worker():
        for count in range(3):  # first failure, then retry_count 1, then 2 == limit -> dead
            wait_for(lambda: r.zcard("retry") == 1 or r.zcard("dead") == 1, what="failure")
            if r.zcard("dead"):
                break
            # Make the retry due now instead of waiting out the backoff.
            member = r.zrange("retry", 0, 0)[0]
            assert json.loads(member)["retry_count"] == count
            r.zadd("retry", {member: time.time() - 1})
            wait_for(lambda m=member: r.zscore("retry", m) is None, what="retry picked up")
        (dead,) = wait_for(lambda: payloads(r, "dead"), what="dead entry")
        wait_for(lambda: ran("exhausted"), what="retries_exhausted hook")
    assert dead["jid"] == jid and dead["retry_count"] == 2 and "retried_at" in dead
    assert ran("exhausted") == [jid] and r.zcard("retry") == 0


def test_retry_false_drops_and_retry_zero_goes_dead(r: redis.Redis) -> None:
    Fails.set(retry=False).perform_async("drop")
    jid = Fails.set(retry=0).perform_async("zero")
    with running_worker():
        wait_for(lambda: r.zcard("dead") == 1, what="dead entry")
        wait_for(lambda: r.get("stat:failed") == "2", what="both failed")
    assert payloads(r, "dead")[0]["jid"] == jid and r.zcard("retry") == 0


def test_scheduler_enqueues_due_jobs(r: redis.Redis) -> None:
    Echo.perform_in(0.3, "later")
    Echo.perform_async("now")
    with running_worker():
        wait_for(lambda: "later" in ran("echo"), what="scheduled job")
    assert ran("echo") == ["now", "later"] and r.zcard("schedule") == 0


def test_strict_priority_order(r: redis.Redis) -> None:
    for i in range(20):
        Priority.set(queue="low").perform_async(f"low{i}")
        Priority.set(queue="high").perform_async(f"high{i}")
    with running_worker(concurrency=1, queues=(("high", 0), ("low", 0))):
        wait_for(lambda: len(ran("priority")) == 40, what="all jobs")
    order = ran("priority")
    assert order[:20] == [f"high{i}" for i in range(20)]  # oldest first within a queue
    assert order[20:] == [f"low{i}" for i in range(20)]


def test_weighted_queues_are_all_served(r: redis.Redis) -> None:
    Priority.set(queue="a").perform_bulk([["a"]] * 300)
    Priority.set(queue="b").perform_bulk([["b"]] * 300)
    with running_worker(concurrency=1, queues=(("a", 3), ("b", 1))):
        wait_for(lambda: len(ran("priority")) >= 200, what="200 jobs")
    first = ran("priority")[:200]
    # With weights 3:1, 'a' comes first about 3 times in 4; strict order would give 200 a's.
    assert 110 <= first.count("a") <= 190 and first.count("b") >= 10


def test_weighted_queues_mix_within_each_fetched_batch(r: redis.Redis) -> None:
    Priority.set(queue="a").perform_bulk([["a"]] * 600)
    Priority.set(queue="b").perform_bulk([["b"]] * 600)
    with running_worker(concurrency=1, queues=(("a", 3), ("b", 1)), prefetch=100):
        wait_for(lambda: len(ran("priority")) >= 400, what="400 jobs")
    order = ran("priority")[:400]
    # Fetches bring up to 100 jobs at a time here. Each job draws its queue by weight, so
    # every 100 hold about 75 a's (4 standard deviations: 58 to 92), not a batch of 100
    # from whichever queue the batch drew first.
    blocks = [order[i:i + 100].count("a") for i in range(0, 400, 100)]
    assert all(55 <= count <= 95 for count in blocks), blocks


def test_heartbeat_writes_process_and_work(r: redis.Redis) -> None:
    Blocks.perform_async(10)
    with running_worker(concurrency=3, tag="shop", labels=("blue",)) as worker:
        wait_for(lambda: ran("started"), what="job start")
        identity = worker.identity
        wait_for(lambda: r.hget(identity, "busy") == "1", what="busy beat")
        info = json.loads(r.hget(identity, "info"))
        fields = r.hgetall(identity)
        work = r.hgetall(f"{identity}:work")
        legacy = r.hgetall(f"{identity}:workers")
        assert r.sismember("processes", identity)
        RELEASE.set()
    assert info["identity"] == identity and info["concurrency"] == 3 and info["tag"] == "shop"
    assert info["queues"] == ["default"] and info["labels"] == ["blue"]
    assert fields["quiet"] == "false" and fields["concurrency"] == "3"
    assert int(fields["rss"]) > 0 and int(fields["rtt_us"]) >= 0 and float(fields["beat"]) > 0
    (entry,) = work.values()
    assert work == legacy
    entry = json.loads(entry)
    assert entry["queue"] == "default" and json.loads(entry["payload"])["class"].endswith("Blocks")
    assert isinstance(entry["run_at"], int)
    assert not r.sismember("processes", identity)  # left the set at shutdown


def test_remote_quiet_and_stop_signals(r: redis.Redis) -> None:
    with running_worker(embedded=False) as worker:
        r.lpush(f"{worker.identity}-signals", "TSTP")
        wait_for(lambda: r.hget(worker.identity, "quiet") == "true", what="quiet flag")
        Echo.perform_async("after quiet")
        r.lpush(f"{worker.identity}-signals", "TERM")
        wait_for(worker.stop_requested.is_set, what="remote stop")
    assert ran("echo") == [] and r.llen("queue:default") == 1


def test_a_quiet_read_from_redis_shows_at_once(r: redis.Redis) -> None:
    """The process's record said quiet only at the beat after the one that read the
    request, which took the request off its list: the dashboard read "running" meanwhile."""
    with running_worker(embedded=False, heartbeat_interval=3, lease_ttl=10) as worker:
        wait_for(lambda: r.hget(worker.identity, "quiet") == "false", what="its first beat")
        r.lpush(f"{worker.identity}-signals", "TSTP")
        wait_for(lambda: r.llen(f"{worker.identity}-signals") == 0, timeout=10,
                 what="the request read")
        # Well within the 3 s to the next beat.
        wait_for(lambda: r.hget(worker.identity, "quiet") == "true", timeout=1,
                 what="the record saying quiet")


def test_graceful_stop_pushes_unfinished_jobs_back(r: redis.Redis,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    Blocks.perform_async(0.01)
    long_jid = Blocks.perform_async(30)
    with caplog.at_level("WARNING", logger="sidequest"), running_worker(concurrency=2,
                                                                        timeout=0.5):
        wait_for(lambda: ran("finished") == [0.01] and len(ran("started")) == 2, what="starts")
    (back,) = [json.loads(p) for p in r.lrange("queue:default", 0, -1)]
    assert back["jid"] == long_jid
    assert (f"1 job still running at the shutdown deadline ({Blocks.wire_name()} jid={long_jid});"
            " pushing it back") in caplog.messages
    assert r.keys("sq:inprogress:*") == []
    RELEASE.set()


def test_a_quiet_says_which_fetched_jobs_it_put_back(r: redis.Redis,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """At a rolling deploy the log is how one checks that nothing was left behind: the jobs
    a quiet or a stop gave back unstarted went back without a word."""
    from sidequest.worker.fetch import Work

    with caplog.at_level("INFO", logger="sidequest"), running_worker() as worker:
        held = [json.dumps({"class": Echo.wire_name(), "args": [n], "jid": f"{n:024d}",
                            "queue": "default"}).encode() for n in (1, 2)]
        inprogress = f"sq:inprogress:{worker.identity}"
        r.lpush(inprogress, *held)  # as a fetch leaves them: listed, and in the buffer
        # The buffer's content, as the processors would have found it (they would have run
        # them before the quiet could see them).
        worker.manager._drain_jobs = lambda: [Work("default", raw) for raw in held]
        worker.manager.quiet()
        # A processor's wait in Redis may take one of them as it ends, and give it back too.
        wait_for(lambda: r.llen(inprogress) == 0 and r.llen("queue:default") == 2,
                 what="both back in their queue")
    assert (f"2 jobs fetched but not started put back in their queues: {Echo.wire_name()}"
            f" jid={1:024d}, {Echo.wire_name()} jid={2:024d}") in caplog.messages


def test_server_middleware_wraps_perform(r: redis.Redis) -> None:
    def around(job: Any, payload: dict[str, Any], queue: str, call_next: Any) -> None:
        record("before", payload["jid"])
        call_next()
        record("after", queue)

    middleware.server.add(around)
    try:
        jid = Echo.perform_async("x")
        with running_worker():
            wait_for(lambda: ran("after"), what="middleware after")
    finally:
        middleware.server.remove(around)
    assert ran("before") == [jid] and ran("after") == ["default"] and ran("echo") == ["x"]


def test_dead_set_is_trimmed_by_count_and_age(r: redis.Redis) -> None:
    r.zadd("dead", {'{"class":"Old","args":[]}': time.time() - 181 * 86400})
    jids = [Fails.set(retry=0).perform_async(i) for i in range(5)]
    with running_worker(concurrency=1, dead_max_jobs=3):
        wait_for(lambda: r.get("stat:failed") == "5", what="five failures")
    kept = [p["jid"] for p in payloads(r, "dead")]
    assert kept == jids[2:]  # the three newest; the 181-day-old entry is gone


def test_warns_when_redis_may_evict_jobs(r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with running_worker():
            pass
    finally:
        r.config_set("maxmemory-policy", "noeviction")
    assert any("maxmemory-policy is 'allkeys-lru'" in m for m in caplog.messages)
    caplog.clear()
    with running_worker():
        pass
    assert not any("maxmemory-policy" in m for m in caplog.messages)


def test_idle_worker_with_several_queues_wakes_on_push(r: redis.Redis) -> None:
    # Polling every 30 s could not pick the job up in time: only the wake-up can.
    with running_worker(queues=(("x", 0), ("y", 0), ("z", 0)), idle_wait=30.0,
                        fetch_timeout=30.0, timeout=1.0):
        time.sleep(0.3)  # let the fetcher go idle: this is the scenario, not a sync
        Priority.set(queue="z").perform_async("woken")
        wait_for(lambda: ran("priority") == ["woken"], timeout=5, what="job on an idle queue")
