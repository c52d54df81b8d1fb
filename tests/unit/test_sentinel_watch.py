"""The thread that asks the Sentinels for the primary lets go of a pool its client dropped:
kept, each reset or new URL left one more pool asked twice a second, its sockets open."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
import warnings

import pytest

from helpers import wait_for
from sidequest import sentinel_watch


class Pool:
    asked = 0

    def get_master_address(self) -> None:
        Pool.asked += 1


def test_a_dropped_pool_is_no_longer_asked() -> None:
    watch = sentinel_watch._Watch()
    pool = Pool()
    watch.add(pool)
    wait_for(lambda: Pool.asked >= 2, 5, "the pool asked twice")
    del pool
    gc.collect()
    wait_for(lambda: not watch.pools(), 5, "the dropped pool let go")


def test_the_thread_ends_once_no_pool_is_left() -> None:
    # A supervisor drops its clients before it forks its workers: the thread must not go on
    # running in it (forking a process that has threads is what the drop is for).
    watch = sentinel_watch._Watch()
    pool = Pool()
    watch.add(pool)
    wait_for(lambda: watch._thread is not None and Pool.asked >= 1, 5, "the thread asking")
    del pool
    gc.collect()
    wait_for(lambda: watch._thread is None, 5, "the thread to end")
    again = Pool()
    watch.add(again)  # a client made later is followed again
    assert watch._thread is not None


def test_a_fork_while_another_thread_holds_the_lock_leaves_the_child_usable() -> None:
    # The child's copy of a lock held at the fork stays locked: taking it hung the child.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with sentinel_watch.watch._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        with warnings.catch_warnings():  # forking with threads is the very case under test
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: the watch made at the fork must answer
            sentinel_watch.watch.pools()
            os._exit(0)
        deadline = time.monotonic() + 10
        while (ended := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        if ended == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        assert ended != (0, 0) and os.waitstatus_to_exitcode(ended[1]) == 0, "the child hung"
    finally:
        release.set()
        holder.join()


class _Address:
    def __init__(self, port: int) -> None:
        self.connection_pool = type("P", (), {"connection_kwargs": {"host": "s", "port": port}})


class FollowingPool:
    """As a redis-py SentinelConnectionPool shows itself to the watcher."""

    primary = ("10.0.0.1", 6379)
    asked = 0

    def __init__(self, service: str = "mymaster") -> None:
        self.service_name = service
        self.sentinel_manager = type("S", (), {"sentinels": [_Address(1), _Address(2)]})
        self.master_address: tuple[str, int] | None = None

    def get_master_address(self) -> tuple[str, int]:
        FollowingPool.asked += 1
        self.master_address = FollowingPool.primary
        return self.master_address


def test_the_sentinels_are_asked_once_a_round_per_service() -> None:
    # A worker has several clients of one service: each asking twice a second multiplied
    # the Sentinels' load by the clients of every process.
    pools = [FollowingPool() for _ in range(5)]
    other = FollowingPool("other")
    watch = sentinel_watch._Watch([*pools, other])
    watch._round()  # the first round: none knows its primary yet
    assert all(p.master_address == FollowingPool.primary for p in pools)
    FollowingPool.asked = 0
    watch._round()
    assert FollowingPool.asked == 2  # one for each service
    FollowingPool.primary = ("10.0.0.2", 6379)  # a failover: every pool learns it
    watch._round()
    assert all(p.master_address == FollowingPool.primary for p in [*pools, other])


def _moves(caplog: pytest.LogCaptureFixture, service: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"Sentinel: the primary of {service} moved")]


def test_a_failover_is_logged_once_however_many_pools_follow_the_service(
        caplog: pytest.LogCaptureFixture) -> None:
    # A worker switched primaries without a word in its log: nothing told when it did.
    FollowingPool.primary = ("10.0.0.1", 6379)
    pools = [FollowingPool("logged") for _ in range(4)]
    watch = sentinel_watch._Watch(pools)
    with caplog.at_level(logging.WARNING, logger="sidequest"):
        watch._round()  # the first answer: nothing moved
        assert not _moves(caplog, "logged")
        FollowingPool.primary = ("10.0.0.2", 6380)
        watch._round()
        watch._round()
    assert len(moves := _moves(caplog, "logged")) == 1
    assert moves[0].startswith("Sentinel: the primary of logged moved from 10.0.0.1:6379 to"
                               " 10.0.0.2:6380; jobs fetched from the old primary")


class Failing(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("the log is out of reach")


def test_a_failing_log_handler_does_not_stop_the_pools_following() -> None:
    FollowingPool.primary = ("10.0.0.1", 6379)
    pools = [FollowingPool("unlogged") for _ in range(3)]
    watch = sentinel_watch._Watch(pools)
    watch._round()
    handler = Failing()
    logger = logging.getLogger("sidequest")
    logger.addHandler(handler)
    try:
        FollowingPool.primary = ("10.0.0.3", 6379)
        watch._round()
    finally:
        logger.removeHandler(handler)
    assert all(p.master_address == ("10.0.0.3", 6379) for p in pools)
