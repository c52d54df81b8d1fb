"""``--metrics-port``: each worker process serves its own Prometheus metrics (what it ran,
failed and how long it took, per class and queue; jobs running now; its memory), with ``-P N``
one port per process, from PORT up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from helpers import FAST, wait_for
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[Any]:
    config = tmp_path / "fast.toml"
    config.write_text("\n".join(f"{k} = {v}" for k, v in FAST.items()) + "\n")
    env = {**os.environ, "REDIS_URL": redis_server.url,
           "LEDGER_URL": redis_server.url[:-1] + "1",
           "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidequest", "-r", "apps.ledger_jobs", "-r",
             "apps.output_jobs", "-C", str(config), "--log-level", "WARNING", *args],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.PIPE)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_a_worker_serves_its_own_counts_and_run_times(worker: Any, r: redis.Redis) -> None:
    from apps.ledger_jobs import Quick
    from apps.output_jobs import Divide

    port = free_ports(1)
    worker("-c", "2", "--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    wait_for(lambda: samples(port), what="the metrics endpoint")
    Quick.perform_bulk([[i] for i in range(30)])
    Divide.perform_async(0)  # ZeroDivisionError, no retry
    labels = {"class": "tests.Quick", "queue": "default"}

    def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = samples(port)
        done = found and value(found, "sidequest_worker_processed_total", **labels) == 30
        failed = found and value(found, "sidequest_worker_failed_total",
                                 **{**labels, "class": "tests.Divide"}) == 1
        return found if done and failed else None

    found = wait_for(counted, what="30 runs and a failure counted")
    assert value(found, "sidequest_worker_failed_total", **labels) == 0
    assert value(found, "sidequest_worker_job_duration_seconds_count", **labels) == 30
    assert value(found, "sidequest_worker_job_duration_seconds_bucket",
                 **labels, le="+Inf") == 30
    assert value(found, "sidequest_worker_concurrency") == 2
    assert ("sidequest_worker_busy", ()) in found
    assert value(found, "process_resident_memory_bytes") > 1_000_000


def test_busy_counts_the_async_jobs_that_run_not_the_threads_waiting_for_the_loop(
        worker: Any, r: redis.Redis) -> None:
    # Two run on the loop, two wait there for a slot, and two threads wait to hand over two
    # more: the dashboard and `sidequest status` say 2 are busy, and so must this gauge.
    from apps.output_jobs import Nap

    port = free_ports(1)
    worker("-c", "2", "--async-concurrency", "2", "--metrics-port", str(port),
           "--metrics-host", "127.0.0.1")
    wait_for(lambda: samples(port), what="the metrics endpoint")
    Nap.perform_bulk([[30.0]] * 8)
    seen: list[float] = []

    def settled() -> bool:
        found = samples(port)
        seen.append(value(found, "sidequest_worker_busy") if found else -1)
        return seen[-3:] == [2.0] * 3  # steady, not caught between two jobs' starts

    try:
        wait_for(settled, what="the busy gauge to read 2")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it read {seen[-5:]}") from None


def test_each_process_of_p_2_has_its_own_port(worker: Any, r: redis.Redis) -> None:
    port = free_ports(2)
    worker("-P", "2", "-c", "2", "--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    both = wait_for(lambda: (a := samples(port)) and (b := samples(port + 1)) and (a, b),
                    what="both processes' endpoints")
    pids = set()
    for found in both:
        (info,) = [labels for name, labels in found if name == "sidequest_worker_info"]
        pids.add(dict(info)["pid"])
    assert len(pids) == 2


def test_a_port_in_use_is_refused_with_the_fix(worker: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = worker("--metrics-port", str(port), "--metrics-host", "127.0.0.1")
        assert proc.wait(30) == 2
        assert proc.stderr is not None
        error = proc.stderr.read().decode()
    assert f"--metrics-port {port}: cannot listen" in error and "free port" in error, error


def test_a_process_a_job_forks_does_not_keep_the_port() -> None:
    """A job that starts a helper with multiprocessing (fork) handed it the listening
    socket: after the worker process died the helper held the port, answering nothing, and
    the process started in its place could not listen there."""
    from sidequest.worker.exporter import Exporter

    port = free_ports(1)
    exporter = Exporter("test:1:abc", 1, lambda: 0)
    exporter.serve("127.0.0.1", port)
    helper = os.fork()
    if helper == 0:  # the helper: lives on after its parent closes the port
        signal.pause()
        os._exit(0)
    try:
        exporter.close()
        with socket.socket() as again:  # the port is free: no process holds it now
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))
    finally:
        os.kill(helper, signal.SIGKILL)
        os.waitpid(helper, 0)


def test_a_replacement_whose_port_is_still_taken_is_retried(worker: Any) -> None:
    """A -P child started in place of a dead one found its port taken (by a helper the dead
    one had forked, or any process in the moment between): the supervisor took it for a
    setting to fix and stopped the healthy processes with it."""
    port = free_ports(2)
    proc = worker("-P", "2", "-c", "1", "--metrics-port", str(port), "--metrics-host",
                  "127.0.0.1", log=subprocess.PIPE)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    said: list[bytes] = []

    def log_has(text: str) -> bool:
        said.append(proc.stdout.read() or b"")  # type: ignore[union-attr]
        return text in b"".join(said).decode()

    both = wait_for(lambda: (a := samples(port)) and (b := samples(port + 1)) and (a, b),
                    what="both processes' endpoints")
    (info,) = [labels for name, labels in both[1] if name == "sidequest_worker_info"]
    os.kill(proc.pid, signal.SIGSTOP)  # the supervisor starts no replacement meanwhile
    with socket.socket() as squatter:
        # As the exporter's own server does: the scrapes above left connections in TIME_WAIT.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            os.kill(int(dict(info)["pid"]), signal.SIGKILL)

            def taken() -> bool:
                try:
                    squatter.bind(("127.0.0.1", port + 1))
                except OSError:
                    return False
                return True

            wait_for(taken, what="the dead child's port taken by another process")
            squatter.listen()
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        wait_for(lambda: log_has(f"cannot listen on 127.0.0.1:{port + 1}"),
                 what="the replacement refused its port")
        wait_for(lambda: log_has("exited (exit code 1); starting another in"),
                 what="the replacement started again after a wait")
        assert proc.poll() is None and samples(port) is not None  # the group lives on
    # The port is free again: a later replacement serves it.
    wait_for(lambda: samples(port + 1), timeout=40, what="a replacement serving the port")
    assert proc.poll() is None
