"""The README's periodic example, run as a user runs it: its module with two `sidequest`
workers, then `sidequest periodic`; and its `[[periodic]]` tables read by the config loader.
The README's code is read from README.md (after its `<!-- periodic:... -->` markers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import readme_block, wait_for
from sidequest import periodic_jobs
from sidequest.config import build


def test_the_readme_example_runs(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "periodic.py").write_text(readme_block("periodic:jobs"))
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
    env.pop("SIDEQUEST_REDIS_URL", None)
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    procs = []
    try:
        for log in logs:
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "sidequest", "-r", "app.periodic"], cwd=tmp_path,
                    env=env, stdout=out, stderr=subprocess.STDOUT))

        def alive_lines() -> int:
            return sum(log.read_text().count("still alive") for log in logs)

        wait_for(lambda: alive_lines() >= 1, timeout=30, what="the heartbeat job to run")
        listing = subprocess.run([sys.executable, "-m", "sidequest", "periodic"], check=False,
                                 cwd=tmp_path,
                                 env=env, capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, listing.stderr
        rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
        assert rows["nightly-report"].split()[1:7] == ["0", "3", "*", "*", "*",
                                                       "Europe/Paris"]
        assert rows["heartbeat"].split()[1:4] == ["every", "5s", "UTC"]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
    assert all(proc.returncode == 0 for proc in procs), [log.read_text() for log in logs]


def test_the_readme_toml_tables(tmp_path: Path) -> None:
    path = tmp_path / "sidequest.toml"
    path.write_text(readme_block("periodic:toml"))
    tables = build(str(path)).periodic
    entries = [periodic_jobs.from_table(table, str(path)) for table in tables]
    assert [(e.name, e.schedule_text, e.tz, e.args, e.catch_up) for e in entries] == [
        ("nightly-report", "0 3 * * *", "Europe/Paris", [7], False),
        ("heartbeat", "every 5s", None, [], True)]


@pytest.fixture(autouse=True)
def fresh() -> None:
    periodic_jobs.clear()
