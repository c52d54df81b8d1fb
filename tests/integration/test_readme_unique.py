"""The README's unique and expiring jobs example runs as written against a real Redis and
prints what its comments say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import redis

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> str:
    """The fenced code block right after ``<!-- marker -->`` in README.md."""
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```\w*\n(.*?)^```", README.read_text(),
                      re.DOTALL | re.MULTILINE)
    assert found, f"README.md has no fenced block after <!-- {marker} -->"
    return found.group(1)


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
    lines = result.stdout.splitlines()
    assert lines[:5] == ["True None", "True", "True None", "True", lines[4]]
    bulk = json.loads(lines[4].replace("'", '"').replace("None", "null"))
    assert len(bulk) == 3 and bulk[1] is None and bulk[0] and bulk[2]
    queued = [json.loads(raw) for raw in r.lrange("queue:default", 0, -1)]
    classes = sorted(p["class"] for p in queued)
    assert classes == ["app.unique_jobs.RefreshFeed", *["app.unique_jobs.SyncAccount"] * 5,
                       "app.unique_jobs.push_notification"]
    (notice,) = [p for p in queued if p["class"].endswith("push_notification")]
    assert 29.5 < notice["sq_expires_at"] - notice["created_at"] <= 30
