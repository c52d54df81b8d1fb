"""The throughput bench runs end to end and prints its report.

No timing assertions: how fast is the bench's business (``make bench``), and a loaded CI
machine must not fail the suite. This only proves the bench still works.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "throughput.py"
TIMEOUT = 100.0  # under pytest's own 120 s, so that we, not pytest, stop the bench


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, str(BENCH), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM, not the SIGKILL of subprocess.run: the bench then stops its worker and
        # its redis-server instead of leaving them running.
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"the bench did not finish in {TIMEOUT:.0f} s\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_quick_bench_prints_its_report() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing")
        pytest.skip("redis-server is missing (`make redis`)")
    result = run_bench("--quick")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    drain = re.search(r"^drain jobs/s\s+([\d,]+)", out, re.MULTILINE)
    assert drain is not None, out
    assert float(drain.group(1).replace(",", "")) > 0
    assert re.search(r"^all acknowledged: yes ", out, re.MULTILINE), out
    for label in ("bulk enqueue jobs/s", "single enqueue jobs/s", "peak RSS MB", "machine "):
        assert label in out, out
