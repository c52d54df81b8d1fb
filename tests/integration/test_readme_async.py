"""The README's async jobs example runs as written: its module in app/, its pushes from an
event loop in one process, a real ``sidequest`` worker process running them; the stop
example saves its position when the worker is told to stop. Real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from helpers import wait_for
from integration.test_readme_unique import readme_block


def _app(tmp_path: Path, redis_url: str) -> dict[str, str]:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "async_jobs.py").write_text(readme_block("readme:async-jobs"))
    env = {k: v for k, v in os.environ.items() if k != "SIDEQUEST_REDIS_URL"}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(tmp_path))
    return env


def _worker(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen([sys.executable, "-m", "sidequest", "-r", "app.async_jobs",
                             "-t", "3"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _stop(worker: subprocess.Popen[bytes]) -> int:
    worker.send_signal(signal.SIGTERM)
    return worker.wait(20)


def test_readme_async_example_runs(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    env = _app(tmp_path, redis_url)
    pushed = subprocess.run([sys.executable, "-c", readme_block("readme:async-enqueue")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert r.llen("queue:default") == 4 and r.zcard("schedule") == 2
    worker = _worker(tmp_path, env)
    try:
        wait_for(lambda: r.smembers("notified") == {"1", "2", "3", "7"}, timeout=30,
                 what="the four pushed Notify jobs to run")
    finally:
        assert _stop(worker) == 0, (tmp_path / "worker.log").read_text()
    assert r.zcard("schedule") == 2, "the jobs pushed for later still wait"


def test_readme_reindex_resumes_where_it_stopped(redis_url: str, r: redis.Redis,
                                                 tmp_path: Path) -> None:
    env = _app(tmp_path, redis_url)
    worker = _worker(tmp_path, env)
    pushed = subprocess.run(
        [sys.executable, "-c", "from app.async_jobs import Reindex; Reindex.perform_async()"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert pushed.returncode == 0, pushed.stderr
    try:
        wait_for(lambda: r.llen("queue:default") == 0 and r.hlen(_busy(r)) == 1, timeout=30,
                 what="Reindex to be running")
    finally:
        assert _stop(worker) == 0, (tmp_path / "worker.log").read_text()
    (raw,) = r.lrange("queue:default", 0, -1)
    resumed = json.loads(raw)
    assert resumed["class"].endswith("Reindex") and resumed["args"][0] > 0
    # It ran once: stopping() turns true when fetching stops, not before. Before, it was
    # true up to a tenth of a second earlier, and the stopping worker fetched the pushed
    # job back and ran it again, dozens of times.
    log = (tmp_path / "worker.log").read_text()
    assert log.count("Reindex") <= 2 and int(r.get("stat:processed") or 0) == 1, log


def _busy(r: redis.Redis) -> str:
    """The work hash of the one worker process (its running jobs)."""
    identities = sorted(r.smembers("processes"))
    return f"{identities[0]}:work" if identities else "none:work"


TENANT_JOBS = '''
import redis as redis_py, os
from sidequest import Job
from app.middleware import tenant

store = redis_py.Redis.from_url(os.environ["REDIS_URL"])

class SyncTenant(Job):
    def perform(self, name):
        store.hset("seen", name, str(tenant.get()))

class AsyncTenant(Job):
    async def perform(self, name):
        store.hset("seen", name, str(tenant.get()))
'''


def test_readme_middleware_carries_a_value_to_sync_and_async_jobs(
        redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    env = _app(tmp_path, redis_url)
    (tmp_path / "app" / "middleware.py").write_text(readme_block("readme:middleware"))
    (tmp_path / "app" / "tenant_jobs.py").write_text(TENANT_JOBS)
    push = ("from app.tenant_jobs import SyncTenant, AsyncTenant\n"
            "from app.middleware import tenant\n"
            "SyncTenant.perform_async('none')\n"
            "tenant.set('acme')\n"
            "SyncTenant.perform_async('sync'); AsyncTenant.perform_async('async')\n")
    pushed = subprocess.run([sys.executable, "-c", push], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert pushed.returncode == 0, pushed.stderr
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - the child holds it
    worker = subprocess.Popen([sys.executable, "-m", "sidequest", "-r", "app.tenant_jobs",
                               "-t", "3"], cwd=tmp_path, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: r.hlen("seen") == 3, timeout=30, what="the three jobs to run")
    finally:
        assert _stop(worker) == 0, (tmp_path / "worker.log").read_text()
    assert r.hgetall("seen") == {"none": "None", "sync": "acme", "async": "acme"}
    # The async job ran on the loop: no warning that a plain middleware holds a thread.
    assert "acall" not in (tmp_path / "worker.log").read_text()
