"""bench/capacity.py --shards 2 runs end to end: it prints each operation's Redis cost on one
Redis with the capacity model fitted to it, then each shard's measured cost beside what the
model predicts from that shard's own round trips and worker seconds. (bench/capacity.py
without --shards prints the first part alone: the same code.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import need_redis, run_script

CAPACITY = Path(__file__).resolve().parents[2] / "bench" / "capacity.py"
OPERATIONS = ["push", "bulk push", "run", "run one by one", "retry", "scheduled"]
NUMBER = r"(-?[\d.]+)"


def single_rows(stdout: str) -> dict[str, list[float]]:
    """operation -> us/job, trips/job, worker us/job, work us/job."""
    rows = re.findall(rf"^({'|'.join(OPERATIONS)}) +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}"
                      r" +[\d,]+$", stdout, re.MULTILINE)
    assert [row[0] for row in rows] == OPERATIONS, stdout
    return {name: [float(v) for v in values] for name, *values in rows}


@pytest.mark.slow  # a load test: run once, not on every Python
def test_capacity_bench_fits_a_model_and_checks_each_shard_against_it() -> None:
    need_redis()
    result = run_script(CAPACITY, "-n", "200", "--runs", "1", "--shards", "2",
                        "--idle-seconds", "2", timeout=240.0)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    single = single_rows(result.stdout)
    assert all(row[0] > 0 for row in single.values()), single
    # A job that fails once runs twice; a bulk push shares its round trip among many.
    assert single["retry"][0] > single["run"][0], single
    assert single["bulk push"][0] < single["push"][0], single
    # One thread without prefetch fetches each job in a round trip of its own; ten batch.
    assert single["run one by one"][1] >= 0.9 > single["run"][1], single
    trip, timers, start = (float(v) for v in re.findall(
        r"^a round trip: ([\d.-]+) us .*a worker's timers: ([\d.-]+) us per second"
        r".*a worker's start: ([\d.-]+) us$", result.stdout, re.MULTILINE)[0])
    assert trip > 0 and start > 0, result.stdout
    for name, (us, trips, worker_us, work) in single.items():
        # work = us/job - trips/job x round trip - worker seconds/job x timers
        #        - starts/job x start (one worker started for the 200 jobs), to rounding
        starts = 0 if "push" in name else 1 / 200
        expected = us - trips * trip - worker_us / 1e6 * timers - starts * start
        assert abs(work - expected) <= 0.1 + 0.001 * trip + 0.0001 * timers + 0.003, (
            name, work)
    fetch, ack = (float(v) for v in re.findall(
        r"^of a run's work: fetch \(LMOVE\) ([\d.]+) us, acknowledge \(LREM\) ([\d.]+) us",
        result.stdout, re.MULTILINE)[0])
    # Part of what a run costs. (Not compared with the fitted work: with 200 jobs a loaded
    # machine's worker seconds dominate, and the work left after them can come out below 0.)
    assert 0 < fetch + ack <= single["run"][0] + 0.1, (fetch, ack, single["run"])
    shards = re.findall(rf"^({'|'.join(OPERATIONS)}) +([12]) +{NUMBER} +{NUMBER} +{NUMBER}"
                        rf" +{NUMBER} +{NUMBER} +(yes|NO)$", result.stdout, re.MULTILINE)
    assert [(row[0], row[1]) for row in shards] == [
        (name, shard) for name in OPERATIONS if name != "run one by one" for shard in "12"]
    for name, _, us, _, _, model, ratio, verdict in shards:
        assert float(us) > 0, name  # both shards did the work
        # ratio = measured / model, printed to 0.1 us and 0.01
        assert abs(float(ratio) - float(us) / float(model)) <= 0.01 + 0.1 / abs(float(model))
        off = abs(float(ratio) - 1)
        if abs(off - 0.10) > 0.006:  # at the boundary the printed ratio cannot tell
            assert (verdict == "yes") == (off <= 0.10), (name, ratio, verdict)
