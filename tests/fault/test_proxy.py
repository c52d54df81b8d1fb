"""The harness itself: the fault proxy does each fault it claims, and the ledger counts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from fault.harness import Ledger
from fault.proxy import FaultProxy, RespParser, evalsha_of, script_sha
from helpers import wait_for
from redis_server import NO_RETRY


def client(proxy: FaultProxy, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(proxy.url(), socket_timeout=timeout, retry=NO_RETRY)


def test_parser_splits_pipelined_and_partial_commands() -> None:
    parser = RespParser()
    stream = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n"
    assert parser.feed(stream[:20]) == [(0, 14, [b"PING"])]
    assert parser.feed(stream[20:]) == [(14, len(stream), [b"SET", b"k", b"va\r\nl"])]


def test_passes_traffic_and_adds_latency(proxy: FaultProxy, r: redis.Redis) -> None:
    c = client(proxy)
    assert c.set("a", "1") and r.get("a") == b"1"
    started = time.monotonic()
    c.ping()
    fast = time.monotonic() - started
    proxy.latency = 0.05
    started = time.monotonic()
    c.ping()
    slow = time.monotonic() - started
    assert slow >= 0.1 > fast  # 50 ms each way
    assert proxy.commands["SET"] == 1


def test_reset_all_sends_rst(proxy: FaultProxy) -> None:
    c = client(proxy, timeout=5)
    errors: list[Exception] = []

    def block() -> None:
        try:
            c.blpop(["nothing"], 4)
        except redis.ConnectionError as exc:
            errors.append(exc)

    thread = threading.Thread(target=block)
    thread.start()
    wait_for(lambda: proxy.commands["BLPOP"] == 1, what="BLPOP through the proxy")
    started = time.monotonic()
    assert proxy.reset_all() == 1
    thread.join(5)
    assert time.monotonic() - started < 1  # not the 4 s BLPOP timeout: the RST ended it
    assert len(errors) == 1 and "reset" in str(errors[0]).lower()
    assert c.ping()  # a new connection works


def test_blackhole_times_out_without_reset(proxy: FaultProxy, r: redis.Redis) -> None:
    c = client(proxy, timeout=0.3)
    c.ping()
    proxy.blackhole(True)
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        c.set("k", "v")
    assert time.monotonic() - started >= 0.3
    assert r.get("k") is None  # dropped, never reached Redis
    proxy.blackhole(False)
    c.connection_pool.disconnect()
    assert c.ping()


def test_pause_holds_traffic_until_released(proxy: FaultProxy, r: redis.Redis) -> None:
    c = client(proxy, timeout=0.2)
    c.ping()
    proxy.pause(True)
    with pytest.raises(redis.TimeoutError):
        c.set("k", "v")
    proxy.pause(False)
    time.sleep(0.1)  # the fault is the delay; the held SET now reaches Redis late
    assert r.get("k") == b"v"


def test_cut_after_runs_the_command_but_loses_the_reply(proxy: FaultProxy,
                                                          r: redis.Redis) -> None:
    c = client(proxy)
    rule = proxy.cut(lambda args: args[:2] == [b"INCRBY", b"n"], "after")
    with pytest.raises(redis.ConnectionError):
        c.incr("n")
    assert rule.fired == 1 and r.get("n") == b"1"
    assert c.incr("n") == 2  # one shot: the next connection is left alone


def test_cut_before_never_runs_the_command(proxy: FaultProxy, r: redis.Redis) -> None:
    c = client(proxy)
    proxy.cut(lambda args: args[0] == b"INCRBY", "before")
    pipe = c.pipeline(transaction=False)
    pipe.set("a", "1").incr("n").set("b", "1")
    with pytest.raises(redis.ConnectionError):
        pipe.execute()
    assert r.get("a") == b"1" and r.get("n") is None and r.get("b") is None


def test_evalsha_matcher_knows_the_fetch_script() -> None:
    match = evalsha_of("fetch")
    assert len(script_sha("fetch")) == 40
    assert match([b"EVALSHA", script_sha("fetch"), b"2"])
    assert not match([b"EVALSHA", script_sha("requeue"), b"2"])


def test_ledger_reports_lost_and_duplicates(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.path.write_text(
        '["start","a",null,1,0]\n["done","a",null,1,0]\n["start","b",null,1,0]\n'
        '["start","b",null,2,0]\n["done","b",null,2,0]\n["done","b",null,3,0]\n["start","c"'
    )
    report = ledger.check(["a", "b", "c", "d"], dead=["d"])
    assert report.lost == ["c"] and report.duplicates == {"b": 2} and report.reruns == {"b": 2}
    assert report.dead_normal == ["d"] and report.done == 2
