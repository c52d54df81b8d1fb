"""The README's batch example runs as written: its jobs module in app/, its push in another
process, a real `sidequest` worker; the batch ends with both callbacks run once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from helpers import readme_block, wait_for


def test_readme_batch_example_runs(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "import_jobs.py").write_text(readme_block("readme:batch-jobs"))
    push = readme_block("readme:batch-push") + "\nprint(batch.bid)\n"
    env = {k: v for k, v in os.environ.items() if k != "SIDEQUEST_REDIS_URL"}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(tmp_path))
    pushed = subprocess.run([sys.executable, "-c", push], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert pushed.returncode == 0, pushed.stderr
    bid = pushed.stdout.split()[-1]
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "sidequest", "-r", "app.import_jobs", "-c", "5",
             "--log-level", "WARNING"], cwd=tmp_path, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        try:
            wait_for(lambda: r.hget(f"sq:batch:{bid}", "success_at"), timeout=60,
                     what="the batch to succeed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; batch {r.hgetall(f'sq:batch:{bid}')}; worker log: "
                                 f"{log.read_text()[-2000:]}") from None
        wait_for(lambda: "import 42 succeeded" in log.read_text()
                 and "import 42 finished" in log.read_text(),
                 timeout=30, what="both callbacks to print")
    finally:
        worker.terminate()
        worker.wait(30)
    output = log.read_text()
    assert output.count("import 42 succeeded") == 1 and output.count("import 42 finished") == 1
    assert output.count("importing row") == 1010  # 1,000 rows and the 10 second steps
    assert r.hget(f"sq:batch:{bid}", "total") == "1010"
