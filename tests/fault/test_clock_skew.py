"""F12: clock skew. Beside a healthy worker, one worker runs with its wall clock 10 minutes
ahead and one 10 minutes behind (libfaketime through the Debian ``faketime`` package).

- Liveness does not depend on clocks (the lease is a key with a TTL that Redis counts down),
  so no reaper may take a healthy process's jobs: jobs longer than the lease run once each.
- Scheduled jobs must fire within a poll interval of real (Redis) time, not of the clock of
  whichever process polls.

libfaketime 0.9.10 (Debian 12) needs two work-arounds under Python 3.11, both in
faketime_shim/sitecustomize.py: only the wall clock is faked (faking the monotonic clock hangs
every timed lock), and ``time.sleep`` goes through ``select``. The worker's watchdog process
(a fresh ``python -I -S``, which loads no sitecustomize) still dies at its first sleep after a
TERM; nothing here depends on it. Without ``faketime``, or if it does not work with Python,
the tests skip locally and fail under CI=true (``make faketime`` installs it as root).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from apps.fault_jobs import Work
from fault.conftest import SpawnWorker
from fault.harness import TESTS, Ledger, Worker, jids
from helpers import FAST, wait_for

SHIM = Path(__file__).resolve().parent / "faketime_shim"
SKEW = 600.0  # seconds: +-10 minutes


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@functools.cache
def _preload() -> str | None:
    """libfaketime's LD_PRELOAD as the faketime wrapper sets it, or why it cannot be used."""
    binary = shutil.which("faketime")
    if binary is None:
        return None
    out = subprocess.run([binary, "--exclude-monotonic", "-f", "+0", "env"],
                         capture_output=True, text=True, timeout=10, check=False).stdout
    for line in out.splitlines():
        if line.startswith("LD_PRELOAD="):
            return line.split("=", 1)[1]
    return ""


def faketime_env(offset: float) -> dict[str, str]:
    preload = _preload()
    if preload is None:
        unavailable("faketime is missing: run `make faketime` (Debian package faketime)")
    if not preload:
        unavailable("faketime did not set LD_PRELOAD; cannot fake a Python process's clock")
    env = {
        "LD_PRELOAD": str(preload),
        "FAKETIME": f"{offset:+.0f}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": os.pathsep.join([str(SHIM), str(TESTS)]),
    }
    problem = _probe(tuple(sorted(env.items())))
    if problem:
        unavailable(f"faketime does not work with Python here: {problem}")
    return env


@functools.cache
def _probe(env_items: tuple[tuple[str, str], ...]) -> str:
    """'' if a Python process under this environment has a shifted wall clock and working
    timed waits and sleeps; else what went wrong."""
    env = {**os.environ, **dict(env_items)}
    code = ("import threading, time, queue; t = time.time(); threading.Event().wait(0.05); "
            "time.sleep(0.01)\ntry:\n    queue.SimpleQueue().get(timeout=0.01)\n"
            "except queue.Empty:\n    pass\nprint(t)")
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return "a timed wait hangs (libfaketime and sem_clockwait, wolfcw/libfaketime#390)"
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "it failed"
    shift = float(done.stdout) - time.time()
    wanted = float(dict(env_items)["FAKETIME"])
    if abs(shift - wanted) > 5:
        return f"the clock moved by {shift:.0f}s instead of {wanted:.0f}s"
    return ""


def start_trio(spawn: SpawnWorker, r: redis.Redis) -> dict[int, float]:
    """A healthy worker, one ahead and one behind; returns pid -> clock offset."""
    ahead_env, behind_env = faketime_env(SKEW), faketime_env(-SKEW)
    workers: dict[float, Worker] = {
        0.0: spawn("-c", "5"),
        SKEW: spawn("-c", "5", env=ahead_env),
        -SKEW: spawn("-c", "5", env=behind_env),
    }
    for offset, worker in workers.items():
        identity = worker.wait_registered(r)
        beat = float(r.hget(identity, "beat") or 0)
        # The process hash carries the worker's own clock: proof the skew took effect.
        assert abs(beat - time.time() - offset) < 5, (offset, beat - time.time())
    return {worker.pid: offset for offset, worker in workers.items()}


def test_skewed_clocks_reap_no_healthy_job(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                           ledger: Ledger) -> None:
    offsets = start_trio(spawn, r)
    # Jobs longer than the lease (1 s): a reaper that judged liveness by its own clock would
    # take them from their (live) owner and run them a second time.
    long_ = Work.perform_bulk([[1.5]] * 15)
    short = Work.perform_bulk([[0.05]] * 150)
    wait_for(lambda: ledger.done_count() >= 165, timeout=30, what="165 jobs done")
    time.sleep(3 * FAST["reaper_interval"])  # a few more reaper passes over idle workers
    report = ledger.check(long_ + short, dead=jids(r.zrange("dead", 0, -1)))
    by_offset = {offset: 0 for offset in offsets.values()}
    for event, _, _, pid, _ in ledger.entries():
        if event == "done":
            by_offset[offsets[pid]] += 1
    print(f"F12 clock skew +-10 min beside a healthy worker: {report.text()}; jobs done by "
          f"offset: {by_offset}")
    assert report.lost == [] and report.reruns == {} and report.dead_normal == []
    assert all(count > 0 for count in by_offset.values()), by_offset
    assert r.llen("sq:poison") == 0 and not r.exists("sq:quarantine")


# It bounds how late a job starts (under a second): beside the other fault tests on two cores
# a job started 1.12 s late, so it runs with the timed tests, alone.
@pytest.mark.timed
def test_scheduled_jobs_fire_on_real_time(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                          ledger: Ledger) -> None:
    offsets = start_trio(spawn, r)
    lead = 2.0
    due = {Work.perform_in(lead, 0): time.time() + lead for _ in range(20)}
    wait_for(lambda: set(due) <= set(ledger.counts("done")), timeout=30,
             what="the scheduled jobs")
    # Each ledger line carries its process's clock: take the offset back out.
    starts = {e[1]: e[4] - offsets[e[3]] for e in ledger.entries()
              if e[0] == "start" and e[1] in due}
    early = [due[jid] - at for jid, at in starts.items()]  # > 0: started before it was due
    # Each of the 3 processes polls every 3 * poll_interval * (0.5 .. 1.5) seconds.
    bound = 3 * FAST["poll_interval"] * 1.5 + 0.5
    print(f"F12 20 jobs scheduled {lead:g}s ahead, a worker 10 min ahead among the pollers: "
          f"start minus due time from {-max(early):+.2f}s to {-min(early):+.2f}s (allowed: "
          f"0 to +{bound:.2f}s)")
    assert max(early) < 0.05, f"a job ran {max(early):.2f}s before it was due"
    assert -min(early) < bound, f"a job ran {-min(early):.2f}s after it was due"
