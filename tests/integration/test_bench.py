"""The throughput and latency benches run end to end and print their reports.

No timing assertions: how fast is the bench's business (``make bench``), and a loaded CI
machine must not fail the suite. This only proves the bench still works.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import need_redis, run_script

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "throughput.py"
LATENCY = ROOT / "bench" / "latency.py"
TIMEOUT = 100.0  # under pytest's own 120 s, so that we, not pytest, stop the bench
LATENCY_ROWS = ("idle, one queue", "idle, three queues", "busy, one queue",
                "busy, three queues")






@pytest.mark.slow  # a load test: run once, not on every Python
def test_quick_bench_prints_its_report() -> None:
    need_redis()
    result = run_script(BENCH, "--quick", timeout=TIMEOUT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    drain = re.search(r"^drain jobs/s\s+([\d,]+)", out, re.MULTILINE)
    assert drain is not None, out
    assert float(drain.group(1).replace(",", "")) > 0
    assert re.search(r"^all acknowledged: yes ", out, re.MULTILINE), out
    for label in ("bulk enqueue jobs/s", "single enqueue jobs/s", "peak RSS MB", "machine "):
        assert label in out, out


def latency_row(out: str, label: str) -> list[str]:
    """The cells of the scenario's table row (they are separated by two spaces or more)."""
    line = next((line for line in out.splitlines() if line.startswith(label + "  ")), None)
    assert line is not None, f"no row for {label!r}\n{out}"
    return re.split(r"\s{2,}", line.strip())


@pytest.mark.slow  # a load test: run once, not on every Python
def test_quick_latency_bench_prints_a_row_per_scenario() -> None:
    need_redis()
    # About 10 s on 2 cores: four workers started and stopped, 21 pushes each.
    result = run_script(LATENCY, "--quick", timeout=60.0)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert "machine " in out and "worker stopped cleanly: yes" in out, out
    for label in LATENCY_ROWS:
        # scenario, worker, queue, jobs, p50, p99, max, load jobs/s, max queue
        cells = latency_row(out, label)
        assert len(cells) == 9, cells
        assert cells[3] == "20", cells
        p50, p99, top = (float(cell.replace(",", "")) for cell in cells[4:7])
        assert 0 < p50 <= p99 <= top, cells
        if label.startswith("busy"):
            assert float(cells[7].replace(",", "")) > 0, cells  # the load flowed
            # A worker starved by a loaded machine falls behind: 1,007 has a separator.
            assert re.fullmatch(r"\d{1,3}(,\d{3})*", cells[8]), cells
        else:
            assert cells[7:] == ["-", "-"], cells


@pytest.mark.slow  # a load test: run once, not on every Python
def test_feature_bench_prints_each_kind_against_a_plain_job() -> None:
    need_redis()
    features = BENCH.parent / "features.py"
    # 5,000 jobs: the CPU window opens at the first completion the bench sees, and on a
    # loaded machine that came late enough in a drain of 2,000 that the window held too few
    # jobs for the CPU clock's tick, and read 0 us a job.
    result = run_script(features, "-n", "5000", "--runs", "1", timeout=90.0)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    rows = re.findall(r"^  (plain|limiter|batch) +([\d,]+) jobs/s \(([\d.]+)x\) +(\d+) us CPU",
                      result.stdout, re.MULTILINE)
    assert [row[0] for row in rows] == ["plain", "limiter", "batch"], result.stdout
    assert rows[0][2] == "1.00" and all(int(row[3]) > 0 for row in rows)
