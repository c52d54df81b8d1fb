"""Dashboard pages on big data (reliability.md L5): bench/web_pages.py with its full data set,
1,000,000 queued jobs and 100,000 each in retries and dead, on a private Redis. About 15 s
here, so it runs in ``make test``; every page must answer in under 300 ms (median of 5)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "web_pages.py"
ROW = re.compile(r"^(/\S*)\s+([\d.]+)ms\s+([\d.]+)ms\s+(\d+)$", re.MULTILINE)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timed]


def test_every_page_is_fast_with_a_million_jobs(redis_server: object) -> None:
    # redis_server: only so that this skips (or fails in CI) like the suite without Redis.
    assert shutil.which("redis-server")
    result = subprocess.run([sys.executable, str(BENCH)], cwd=ROOT, capture_output=True,
                            text=True, timeout=110, check=False)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1,000,000 queued, 100,000 retries, 100,000 dead" in result.stdout
    rows = ROW.findall(result.stdout)
    assert len(rows) >= 20, result.stdout
    for path, median, _worst, status in rows:
        assert status == "200", path
        assert float(median) < 300, f"{path}: {median} ms"
    poll = re.search(r"JSON poll: (\d+) Redis commands in one round trip", result.stdout)
    # The counters, the queue and process sets, the Sidequest process set (to leave dead
    # processes out) and the totals script.
    assert poll and int(poll.group(1)) <= 10, result.stdout
