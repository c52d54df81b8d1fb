"""bench/capacity.py --shards 2 runs end to end and prints each shard's Redis cost per job
beside the single-Redis figure, with their ratio."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import need_redis, run_script

CAPACITY = Path(__file__).resolve().parents[2] / "bench" / "capacity.py"


@pytest.mark.slow  # a load test: run once, not on every Python
def test_capacity_bench_compares_each_shard_with_one_redis() -> None:
    need_redis()
    result = run_script(CAPACITY, "-n", "200", "--runs", "1", "--shards", "2", timeout=240.0)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    rows = re.findall(r"^(push|bulk push|run|retry|scheduled) +([\d.]+) +([\d.]+) +([\d.]+)"
                      r" +([\d.]+) +([\d.]+) +(yes|NO)$", result.stdout, re.MULTILINE)
    assert [row[0] for row in rows] == ["push", "bulk push", "run", "retry", "scheduled"]
    for name, single, *pair in rows:
        shards, ratios = [float(v) for v in pair[:2]], [float(v) for v in pair[2:4]]
        assert all(us > 0 for us in shards), name  # both shards did the work
        for us, ratio in zip(shards, ratios, strict=True):
            # The figures are printed to 0.1 us: the ratio of the unrounded ones.
            low = (us - 0.05) / (float(single) + 0.05)
            high = (us + 0.05) / max(float(single) - 0.05, 0.01)
            assert low - 0.01 <= ratio <= high + 0.01, (name, single, us, ratio)
