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
