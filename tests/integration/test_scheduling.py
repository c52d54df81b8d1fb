"""With ``batch_scheduling = true`` the worker's threads run under Linux's SCHED_BATCH
policy (every thread of the process, the log writer's included); by default, under the
normal one."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from helpers import FAST, wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Main thread, processors, fetcher, heartbeat, scheduler, reaper...: well past a handful.
SOME_THREADS = 6

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux only")


def thread_policies(pid: int) -> set[int]:
    """The policy of every thread of ``pid`` now; one that ends while they are read (a
    short-lived helper thread) is left out."""
    policies = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            policies.add(os.sched_getscheduler(int(tid)))
    return policies


@pytest.mark.parametrize(("setting", "expected"), [
    ("batch_scheduling = true", os.SCHED_BATCH if hasattr(os, "SCHED_BATCH") else 0),
    ("", os.SCHED_OTHER if hasattr(os, "SCHED_OTHER") else 0),
])
def test_every_worker_thread_runs_under_the_configured_policy(
    setting: str, expected: int, redis_url: str, r: redis.Redis, tmp_path: Path,
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text("\n".join([*(f"{k} = {v}" for k, v in FAST.items()), setting]) + "\n")
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.Popen([sys.executable, "-m", "sidequest", "-r", "apps.ledger_jobs",
                             "-c", "3", "-C", str(config)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: r.scard("processes") == 1, what="the worker's registration")
        wait_for(lambda: len(os.listdir(f"/proc/{proc.pid}/task")) >= SOME_THREADS,
                 what="the worker's threads")
        assert thread_policies(proc.pid) == {expected}
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
