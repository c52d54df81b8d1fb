"""The README's rate limiter examples run as written: their modules in app/, the pushes in
one process, a real ``sidequest`` worker in another. The fourth note to one user is over its
3-a-minute bucket and goes back to the schedule, not to the retries; async jobs take turns
at a concurrent slot with ``async with``, each in time, none rescheduled or failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from helpers import readme_block, wait_for
from sidequest import keys


def _app(tmp_path: Path, redis_url: str, module: str, marker: str) -> dict[str, str]:
    """The README block under ``marker`` as ``app/<module>.py``; the environment to run it."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / f"{module}.py").write_text(readme_block(marker))
    env = {k: v for k, v in os.environ.items() if k != "SIDEQUEST_REDIS_URL"}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(tmp_path), PYTHONUNBUFFERED="1")
    return env


def test_readme_limiters_example_runs(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    env = _app(tmp_path, redis_url, "limited_jobs", "readme:limiters")
    # The bucket counts per clock minute of Redis's: start well inside one, so that the four
    # notes cannot straddle two minutes.
    wait_for(lambda: int(r.time()[0]) % 60 < 45, timeout=20, what="the start of a minute")
    pushed = subprocess.run([sys.executable, "-c", readme_block("readme:limiters-try")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert r.llen("queue:default") == 5
    log = tmp_path / "worker.out"
    with log.open("w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "sidequest", "-r", "app.limited_jobs"],
                                  cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: r.zcard("schedule") == 1 and log.read_text().count("to user") == 3,
                     timeout=20, what="three notes sent and the fourth rescheduled")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    text = log.read_text()
    assert "charging order 1001" in text and text.count("to user 7 : note") == 3, text
    (entry,) = [json.loads(raw) for raw in r.zrange("schedule", 0, -1)]
    assert entry["class"] == "app.limited_jobs.Notify" and entry["overlimit_count"] == 1
    assert r.zcard("retry") == 0 and r.get(keys.STAT_OVERLIMIT) == "1"


def test_readme_async_limiter_example_runs(redis_url: str, r: redis.Redis,
                                           tmp_path: Path) -> None:
    env = _app(tmp_path, redis_url, "async_limited_jobs", "readme:limiters-async")
    push = "from app.async_limited_jobs import Render\nRender.perform_bulk([[1], [2], [3]])"
    pushed = subprocess.run([sys.executable, "-c", push], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert pushed.returncode == 0, pushed.stderr
    log = tmp_path / "worker.out"
    with log.open("w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "sidequest", "-r",
                                   "app.async_limited_jobs"],
                                  cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            # Three half-second turns at a slot of one, within its 10 s wait_timeout.
            wait_for(lambda: log.read_text().count("rendered") == 3, timeout=20,
                     what="three renders, one at a time")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    text = log.read_text()
    assert all(f"rendered {n}" in text for n in (1, 2, 3)), text
    assert r.zcard("schedule") == 0 and r.zcard("retry") == 0, text
