"""bench/cost.py: the per-job cost figures come from /proc, summed over every thread of the
worker's process tree, and from a real Redis server's INFO."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import cost  # noqa: E402

# A child that burns CPU on two threads and sleeps in short steps, so that its CPU time and
# its voluntary context switches grow, and both threads' switches count. The threads go on
# until the child is killed: a thread that ended would take its switches out of /proc (a
# fixed number of sleeps ended before a loaded host's first reading), and on such a host a
# 1 ms sleep can take tens of ms, so no fixed time is enough either.
CHILD = """
import threading, time
def work():
    while True:
        sum(range(20000))
        time.sleep(0.001)
threads = [threading.Thread(target=work, daemon=True) for _ in range(2)]
[t.start() for t in threads]
time.sleep(120)
"""


def test_usage_counts_cpu_and_switches_of_every_thread(r: redis.Redis) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    child = subprocess.Popen([sys.executable, "-c", CHILD])
    try:
        before = cost.usage(child.pid, r)
        deadline = time.monotonic() + 60  # a loaded CI host
        after = cost.usage(child.pid, r)
        while after.voluntary - before.voluntary < 300 and time.monotonic() < deadline:
            for _ in range(200):  # work for the Redis server, so its CPU time grows
                r.ping()
            after = cost.usage(child.pid, r)
        status = Path(f"/proc/{child.pid}/status").read_text()  # the main thread's only
        main_only = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    finally:
        child.kill()
        child.wait()
    assert after.user + after.system > before.user + before.system
    # Each worker thread sleeps hundreds of times; the main thread only sleeps once.
    assert after.voluntary - before.voluntary >= 300
    assert after.voluntary >= main_only + 250, "the threads' switches must be summed"
    assert after.redis > before.redis
    per = cost.per_job(before, after, 100)
    assert per.redis_us == pytest.approx((after.redis - before.redis) / 100 * 1e6)
    assert per.cpu_us > 0 and per.voluntary >= 2.0


def test_per_job_divides_differences() -> None:
    before = cost.Usage(1.0, 0.5, 100, 10, 2.0)
    after = cost.Usage(1.6, 0.9, 600, 60, 2.3)
    per = cost.per_job(before, after, 5000)
    assert per.cpu_us == pytest.approx(200.0)
    assert (per.voluntary, per.involuntary) == (pytest.approx(0.1), pytest.approx(0.01))
    assert per.redis_us == pytest.approx(60.0)


def test_a_window_without_cpu_ticks_costs_exactly_zero() -> None:
    # Short drains of sleeping jobs can see no CPU tick between the snapshots; the figure
    # must then be 0, not a rounding error below it (which printed as "-0").
    same = cost.Usage(user=0.37, system=0.21, voluntary=5, involuntary=1, redis=1.0)
    figures = cost.per_job(same, same, 300)
    assert figures.cpu_us == 0.0
    assert f"{figures.cpu_us:.0f}" == "0"
