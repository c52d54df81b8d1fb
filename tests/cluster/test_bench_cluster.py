"""bench/capacity.py --shards 2 --cluster runs end to end on a real local Redis Cluster: it
prints each operation's Redis CPU per job on the primary holding the {sq} slot beside the
other primaries, the ratio to the single-Redis figure of the same run and that primary's
replica, then each of two primaries' cost with the jobs on two shards of the cluster, against
the model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from helpers import need_redis, run_script

CAPACITY = Path(__file__).resolve().parents[2] / "bench" / "capacity.py"
OPERATIONS = ["push", "bulk push", "run", "run one by one", "retry", "scheduled"]
# "work us/job" is a difference of measured figures: on a loaded host it can come out below 0.
NUMBER = r"(-?[\d.]+)"


def need_cluster_support() -> None:
    need_redis()
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is missing: it creates the cluster (`make redis`)")
    redis = pytest.importorskip("redis", reason="redis-py is missing")
    major, minor = (int(part) for part in redis.__version__.split(".")[:2])
    if (major, minor) < (8, 2):
        pytest.skip("cluster mode needs redis-py >= 8.2 (the `cluster` extra, Python 3.11+)")


def rows(stdout: str, columns: int, tail: str = "") -> dict[str, list[float]]:
    found = re.findall(rf"^({'|'.join(OPERATIONS)})" + rf" +{NUMBER}" * columns + tail + "$",
                       stdout, re.MULTILINE)
    return {name: [float(v) for v in values] for name, *values in found}


@pytest.mark.slow  # a load test: run once, not on every Python
# Its four retry samples wait out Sidekiq's retry jitter (up to 10 s each): about 90 s on a
# quiet 2-core host, past the suite's 120 s default under make test's parallel load.
@pytest.mark.timeout(300)
def test_capacity_bench_measures_the_sq_primary_of_a_cluster() -> None:
    need_cluster_support()
    result = run_script(CAPACITY, "-n", "200", "--runs", "1", "--shards", "2", "--cluster",
                        "--cluster-replicas", "1", "--idle-seconds", "1", timeout=300.0)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    single_part, _, cluster_part = result.stdout.partition("Redis Cluster of 3 primaries")
    cluster_part, _, shards_part = cluster_part.partition("2 shards of one Redis Cluster")
    assert cluster_part, result.stdout
    # us/job, trips/job, worker us/job, work us/job, then jobs/s with thousands commas
    single = {name: values[0] for name, values in rows(single_part, 4, r" +[\d,]+").items()}
    assert list(single) == OPERATIONS, result.stdout
    # us/job, trips/job, others us/job, calls/job, ratio, replica us/job
    cluster = rows(cluster_part, 6)
    assert list(cluster) == OPERATIONS, result.stdout
    for name, (us, _, _, _, ratio, replica) in cluster.items():
        assert replica > 0, (name, replica)  # it applied every write its primary fed it
        assert us > 0, (name, us)
        # ratio = the {sq} primary's us/job / one Redis's, both printed to 0.1 us and the
        # ratio to 0.01: it lies between the ratios the rounded figures allow.
        low = (us - 0.05) / (single[name] + 0.05) - 0.005
        high = (us + 0.05) / max(single[name] - 0.05, 1e-9) + 0.005
        assert low <= ratio <= high, (name, ratio, us, single[name])
    # The worker's fetch scripts ran on the {sq} primary: every Sidequest key is there.
    assert cluster["run one by one"][1] >= 0.9, cluster
    assert cluster["run"][1] > 0, cluster
    # A starting worker's cluster client asks a node for the slot map (CLUSTER SLOTS).
    assert cluster["run"][3] > 0, cluster
    # Pushes are all work on the {sq} primary; the other two only tick over meanwhile (their
    # ticking, over 200 jobs on a loaded host, came to 60% of the push's cost once: more than
    # an even spread over the three would leave the {sq} primary, so "more" is the check).
    push, others = cluster["push"][0], cluster["push"][2]
    assert push > others, (push, others)
    # Two shards on the cluster: both primaries did their half of every operation.
    shards = re.findall(rf"^({'|'.join(OPERATIONS)}) +([12]) +{NUMBER} +{NUMBER} +{NUMBER}"
                        rf" +{NUMBER} +{NUMBER} +{NUMBER}-{NUMBER} +(yes|NO)$", shards_part,
                        re.MULTILINE)
    assert [(row[0], row[1]) for row in shards] == [
        (name, shard) for name in OPERATIONS if name != "run one by one" for shard in "12"]
    for name, _, us, trips, _, _, _, _, _, _ in shards:
        assert float(us) > 0, (name, us)
        if name == "run":  # the second shard's worker process fetched from its own primary
            assert float(trips) > 0, (name, trips)
