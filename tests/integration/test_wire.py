"""The enqueue path's plain round trip (sidequest/wire.py) against a real Redis: replies in
order, error replies that leave the connection in step, a dropped connection replaced, and
an enqueue that writes once."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

import sidequest
from sidequest import Batch, Job, RedisUnavailable, client, connection, wire


class Plain(Job):
    queue = "wire"

    def perform(self, n: int) -> None:
        pass


class Once(Plain):
    unique_for = 60


class Stored(Plain):
    store_result = True


def _wire_args(r: redis.Redis) -> list[Any]:
    return [json.loads(raw)["args"][0] for raw in r.lrange("queue:wire", 0, -1)]


def test_replies_come_back_in_order(redis_url: str) -> None:
    target = connection.client()
    assert wire.usable(target)
    replies = wire.run(target, [("SET", "w:a", "1"), ("INCR", "w:a"), ("GET", "w:a")])
    assert replies == [b"OK", 2, b"2"]


def test_an_error_reply_raises_after_every_reply_is_read(redis_url: str) -> None:
    target = connection.client()
    target.set("w:s", "text")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        wire.run(target, [("LPUSH", "w:s", "x"), ("SET", "w:after", "yes")])
    # The command after the failing one ran, and the next caller on the pool gets its own
    # reply, not the one left over from the failed exchange.
    assert target.get("w:after") == b"yes"
    assert wire.run(target, [("GET", "w:s")]) == [b"text"]


def test_a_connection_killed_by_the_server_is_replaced(redis_url: str, r: redis.Redis) -> None:
    Plain.perform_async(1)  # the pool now holds an open connection
    target = connection.client()
    killed = r.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    Plain.perform_async(2)
    assert sorted(json.loads(raw)["args"][0] for raw in r.lrange("queue:wire", 0, -1)) == [1, 2]
    assert wire.run(target, [("PING",)]) == [b"PONG"]


def test_a_plain_push_is_one_sadd_and_one_lpush(redis_url: str, r: redis.Redis) -> None:
    jid = Plain.perform_async(7)
    assert r.smembers("queues") == {"wire"}
    (raw,) = r.lrange("queue:wire", 0, -1)
    assert json.loads(raw)["jid"] == jid
    at = 4_000_000_000
    later = Plain.perform_at(at, 8)
    ((body, score),) = r.zrange("schedule", 0, -1, withscores=True)
    assert json.loads(body)["jid"] == later and score == at


def test_a_single_connection_client_keeps_the_pipeline(redis_url: str) -> None:
    single = redis.Redis.from_url(redis_url, single_connection_client=True)
    try:
        assert not wire.usable(single)
    finally:
        single.close()


def test_redis_gone_is_reported_as_unavailable() -> None:
    sidequest.configure("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        assert wire.usable(connection.client())
        with pytest.raises(RedisUnavailable, match="not enqueued"):
            Plain.perform_async(1)
    finally:
        connection.reset()


def test_a_redis_that_accepts_but_never_answers_fails_a_push_in_one_timeout() -> None:
    # The connection's handshake never gets its reply: nothing was sent, so the push says
    # it was not enqueued; and connecting is not retried (each retry, and the health check
    # redis-py retries inside it, would hold the caller another socket_timeout).
    with _silent_server() as (port, accepted):
        sidequest.configure(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        try:
            with pytest.raises(RedisUnavailable, match="not enqueued"):
                Plain.perform_async(1)
        finally:
            connection.reset()
        assert len(accepted) == 1


@contextlib.contextmanager
def _silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A listening socket that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return  # closed

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def test_a_reply_lost_after_the_send_is_not_sent_again(redis_url: str, r: redis.Redis) -> None:
    # Redis holds writes (CLIENT PAUSE WRITE) past the client's timeout: the push was sent and
    # may yet run, so it must be neither resent (a second copy) nor called "not enqueued".
    sidequest.configure(redis_url, socket_timeout=0.3)
    try:
        Plain.perform_async(0)  # a connection in the pool, to be reused
        connections = r.info("stats")["total_connections_received"]
        r.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
        with pytest.raises(RedisUnavailable, match="may have been enqueued"):
            Plain.perform_async(1)
        # Not resent: a resend would have opened a new connection to send it on.
        assert r.info("stats")["total_connections_received"] == connections
        r.execute_command("CLIENT", "UNPAUSE")
        Plain.perform_async(2)  # the pool recovers
        assert 2 in [json.loads(raw)["args"][0] for raw in r.lrange("queue:wire", 0, -1)]
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
        connection.reset()


@pytest.mark.parametrize("kind", [Once, Stored], ids=["unique", "stored-result"])
def test_a_push_with_a_script_or_a_status_is_not_sent_again_either(
        kind: type[Plain], redis_url: str, r: redis.Redis) -> None:
    # These pushes take more commands than a plain one (a script, a status hash) and once
    # went through a pipeline, which resends after a timeout.
    sidequest.configure(redis_url, socket_timeout=0.3)
    try:
        kind.perform_async(0)
        connections = r.info("stats")["total_connections_received"]
        r.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
        with pytest.raises(RedisUnavailable, match="may have been enqueued"):
            kind.perform_async(1)
        assert r.info("stats")["total_connections_received"] == connections
        r.execute_command("CLIENT", "UNPAUSE")
        assert kind.perform_async(2)
        assert _wire_args(r).count(2) == 1
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
        connection.reset()


def test_a_unique_push_loads_its_script_when_redis_has_forgotten_it(
        redis_url: str, r: redis.Redis) -> None:
    assert Once.perform_async(1)
    r.script_flush()  # as after a restart: the next EVALSHA gets NOSCRIPT, and ran nothing
    assert Once.perform_async(2)
    assert Once.perform_async(2) is None  # the lock the reloaded script took holds
    assert sorted(_wire_args(r)) == [1, 2]


def test_without_hiredis_redis_py_packs_the_same_commands(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = connection.client()
    commands = [("SET", "w:f", "café"), ("ZADD", "w:z", 1.5, b"m"), ("GET", "w:f")]
    fast = wire.run(target, commands)
    monkeypatch.setattr(wire, "_pack_command", None)  # as installed without hiredis
    assert wire.run(target, commands) == [b"OK", 0, "café".encode()] and fast[0] == b"OK"
    assert target.zscore("w:z", "m") == 1.5


def test_a_push_to_a_read_only_replica_says_it_was_not_enqueued(
        redis_server: Any, second_redis: Any, r: redis.Redis) -> None:
    # A plain URL left on the old primary after a failover: it answers READONLY.
    replica = second_redis.client()
    replica.replicaof(redis_server.host, redis_server.port)
    try:
        sidequest.configure(second_redis.url)
        with pytest.raises(RedisUnavailable, match=r"read-only replica .*not enqueued"):
            Plain.perform_async(6)
    finally:
        connection.reset()
        replica.replicaof("NO", "ONE")
        replica.close()
    assert r.llen("queue:wire") == 0


def test_writes_refused_for_too_few_replicas_say_not_enqueued(r: redis.Redis) -> None:
    """min-replicas-to-write with its replica out of reach (a Sentinel failover): every
    write is refused NOREPLICAS, which came out raw, saying nothing of the job."""
    r.config_set("min-replicas-to-write", 1)
    try:
        for push in (lambda: Plain.perform_async(7), lambda: Once.perform_async(8),
                     lambda: Stored.perform_async(9)):
            with pytest.raises(RedisUnavailable, match=r"refuses writes for now .*not enqueued"):
                push()
        with pytest.raises(RedisUnavailable, match=r"refuses writes for now .*not created"):
            Batch()
    finally:
        r.config_set("min-replicas-to-write", 0)
    assert r.llen("queue:wire") == 0


def test_a_replica_that_lost_its_primary_is_unavailable_not_a_raw_error(
        second_redis: Any) -> None:
    """replica-serve-stale-data no: it answers MASTERDOWN, which redis-py raises without
    that word (MasterDownError), so it was not recognised and came out raw."""
    replica = second_redis.client()
    replica.config_set("replica-serve-stale-data", "no")
    replica.replicaof("127.0.0.1", 1)  # a primary that is not there
    try:
        sidequest.configure(second_redis.url)
        with pytest.raises(RedisUnavailable, match=r"refuses writes for now"):
            Batch.find("0" * 24)
    finally:
        connection.reset()
        replica.replicaof("NO", "ONE")
        replica.config_set("replica-serve-stale-data", "yes")
        replica.close()


def test_a_push_redis_writes_in_part_never_says_not_enqueued(r: redis.Redis) -> None:
    # The schedule is not a sorted set (another program's key): the scheduled job's ZADD is
    # refused, the other job's LPUSH runs. The push is in Redis in part, so "not enqueued"
    # (and "push it again") would be wrong.
    r.set("schedule", "not a sorted set")
    items = [{"class": "Plain", "queue": "wire", "args": [1], "at": time.time() + 3600},
             {"class": "Plain", "queue": "wire", "args": [2]}]
    with pytest.raises(RedisUnavailable, match="wrote part of the push") as caught:
        client.push_many(items)
    assert "not enqueued" not in str(caught.value)
    assert _wire_args(r) == [2]


def test_a_push_stopped_part_way_by_maxmemory_says_it_may_be_in_redis(
        r: redis.Redis) -> None:
    # Redis checks maxmemory before each command: the first of a push's commands may grow
    # memory past it, and the next be refused.
    half = 500_000
    items = [{"class": "Plain", "queue": "wire", "args": ["a" * half], "at": time.time() + 3600},
             {"class": "Plain", "queue": "wire", "args": ["b" * half]}]
    # The same push once without a limit: the connection's read buffer, which counts as
    # used memory, then has the size this push needs before the limit is measured.
    client.push_many(items)
    r.delete("queue:wire", "schedule")
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + int(1.6 * half))
    try:
        with pytest.raises(RedisUnavailable) as caught:
            client.push_many(items)
    finally:
        r.config_set("maxmemory", 0)
    assert r.zcard("schedule") + r.llen("queue:wire") == 1  # one job of the two written
    assert "wrote part of the push" in str(caught.value)
    assert "not enqueued" not in str(caught.value)


def test_a_push_whose_queue_name_alone_was_written_says_not_enqueued(r: redis.Redis) -> None:
    # The SADD of the queue's name runs, and the LPUSH of the jobs is refused: no job was
    # written, yet the error said "in part", and the caller was sent to look for 500 jids.
    # Redis counts the pushing connection's read buffer as used memory: with a big job, the
    # first command (the SADD) runs, and the LPUSH after it is refused.
    # A stored status adds an HSET and an EXPIRE: in one transaction with the job, so that
    # a refusal leaves no "queued" status for a job that is not there.
    for extra in ({}, {"store_result": True}):
        r.delete("queues")
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + 100_000)
        try:
            with pytest.raises(RedisUnavailable) as caught:
                client.push_many([{"class": "Plain", "queue": "wire", "args": ["x" * 1_000_000],
                                   **extra}])
        finally:
            r.config_set("maxmemory", 0)
        assert r.llen("queue:wire") == 0  # (the SADD of its name ran, on this Redis at least)
        assert "wrote part of the push" not in str(caught.value), (extra, str(caught.value))
        assert "not enqueued" in str(caught.value), str(caught.value)
        assert r.keys("sq:status:*") == [], "a status left for a job not enqueued"


class _Primary:
    """Sentinel's answer for the test below: the primary is at ``address``."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address

    def discover_master(self, service: str) -> tuple[str, int]:
        return self.address


def test_a_primary_demoted_part_way_through_a_write_is_not_written_again(
        redis_server: Any, second_redis: Any) -> None:
    # Through Sentinel's connection, a replica's READONLY becomes a ConnectionError. Refused
    # at the first command, nothing ran and the write may go to the new primary; refused
    # after one that ran, resending could write that one twice.
    replica = second_redis.client()
    replica.replicaof(redis_server.host, redis_server.port)
    pool = SentinelConnectionPool("svc", _Primary((second_redis.host, second_redis.port)))
    target = redis.Redis(connection_pool=pool)
    try:
        with pytest.raises(redis.ConnectionError) as first:
            wire.answers(target, [("SET", "w:k", "1")])
        assert not isinstance(first.value, wire.ReplyLost)
        with pytest.raises(wire.ReplyLost, match="part way"):
            wire.answers(target, [("GET", "w:k"), ("SET", "w:k", "1")])
        # A batch push's transaction: refused at its first queued write, after MULTI's OK,
        # nothing of it ran (the dropped connection discards the queue): clean, not "lost".
        with pytest.raises(redis.ConnectionError) as queued:
            wire.answers(target, [("MULTI",), ("SET", "w:k", "1"), ("EXEC",)])
        assert not isinstance(queued.value, wire.ReplyLost)
    finally:
        target.close()
        replica.replicaof("NO", "ONE")
        replica.close()


def test_an_applications_connect_function_is_still_called(redis_url: str, r: redis.Redis) -> None:
    # Sidequest checks each new connection (no Cluster node behind redis://) in a connect
    # function of its own: one given to configure() runs in its place, not refused.
    called: list[Any] = []

    def connect(conn: Any) -> None:
        called.append(conn)
        conn.on_connect()

    sidequest.configure(redis_url, redis_connect_func=connect)
    try:
        assert Plain.perform_async(9)
    finally:
        connection.reset()
    assert called and _wire_args(r) == [9]
