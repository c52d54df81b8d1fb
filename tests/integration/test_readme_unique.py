"""The README's unique and expiring jobs example runs as written (its module in app/, its
pushes in a separate process) against a real Redis, and leaves what its comments say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

from helpers import readme_block


def test_readme_unique_example_runs(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "unique_jobs.py").write_text(readme_block("readme:unique-jobs"))
    env = {k: v for k, v in os.environ.items() if k != "SIDEQUEST_REDIS_URL"}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", readme_block("readme:unique-enqueue")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr
    queued = [json.loads(raw) for raw in r.lrange("queue:default", 0, -1)]
    names = sorted(p["class"].rsplit(".", 1)[1] for p in queued)
    assert names == ["Refresh", "SendLoginCode", "SyncAccount", "SyncAccount", "SyncAccount",
                     "warm_cache"]
    assert r.zcard("schedule") == 1
    (code,) = [p for p in queued if p["class"].endswith("SendLoginCode")]
    assert 299.5 < code["expires_at"] - code["created_at"] <= 300
    # SyncAccount 7, 8, 10 in an hour and 9; Refresh of account 1; warm_cache of "home".
    assert len(list(r.scan_iter("sq:unique:*"))) == 6
