"""bench/capacity.py --shards 2 runs end to end: it prints each operation's Redis cost on one
Redis with the capacity model fitted to it, then each shard's measured cost beside what the
model predicts from that shard's own round trips and worker seconds, run by run. (bench/capacity.py
without --shards prints the first part alone: the same code.)"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from helpers import need_redis, run_script

ROOT = Path(__file__).resolve().parents[2]
for _path in (str(ROOT), str(ROOT / "src")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench.capacity import paired  # noqa: E402
from bench.redis_cost import Cost, Model, Sample  # noqa: E402

CAPACITY = ROOT / "bench" / "capacity.py"
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
                        rf" +{NUMBER} +{NUMBER} +{NUMBER}-{NUMBER} +(yes|NO)$", result.stdout,
                        re.MULTILINE)
    assert [(row[0], row[1]) for row in shards] == [
        (name, shard) for name in OPERATIONS if name != "run one by one" for shard in "12"]
    for name, _, us, _, _, model, ratio, low, high, verdict in shards:
        assert float(us) > 0, name  # both shards did the work
        # One run: the ratio is that run's measured / model, printed to 0.01 us and 0.01,
        # and the runs' range is that one ratio.
        assert abs(float(ratio) - float(us) / float(model)) <= 0.01 + 0.01 / abs(float(model))
        assert float(low) == float(ratio) == float(high), (name, ratio, low, high)
        off = abs(float(ratio) - 1)
        if abs(off - 0.10) > 0.006:  # at the boundary the printed ratio cannot tell
            assert (verdict == "yes") == (off <= 0.10), (name, ratio, verdict)


def test_each_shard_sample_is_judged_against_the_reference_sample_of_its_own_run() -> None:
    # The model predicts 12 us a job at 0.02 round trips a job (10 us of work, 100 a trip).
    model = Model(us_per_trip=100.0, us_per_second=0.0, us_per_start=0.0, work={"run": 10.0})
    # The one-Redis reference: 10 us a job in the first run, 20 in a run twice as slow;
    # its median is 15.
    median = Cost(us_per_job=15.0, trips_per_job=0.02, us_of_worker_per_job=0.0)
    shard = [Sample(jobs=1000, cpu=0.008, trips=20),  # 8 us
             Sample(jobs=1000, cpu=0.0176, trips=20)]  # 17.6 us, in the slow run
    models, ratios = paired(model, "run", shard, [10.0, 20.0], median)
    # Each run's prediction is 12 us x that run's reference / the median: 8 and 16 us.
    assert models == pytest.approx([8.0, 16.0])
    # The first shard sample is what its run predicts; the second is 10% over its run's,
    # though against the unscaled 12 us it would look 47% over.
    assert ratios == pytest.approx([1.0, 1.1])
