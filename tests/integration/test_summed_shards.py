"""``summed`` adds what ``each_shard`` returns, snapshots or their ``as_dict()`` rows, and says
what it takes when given something else."""

from __future__ import annotations

import pytest
import redis

from sidequest.api.stats import Stats, each_shard, summed


def test_summed_takes_what_each_shard_returns(two_shards: tuple[redis.Redis, redis.Redis]
                                              ) -> None:
    default, reports = two_shards
    default.set("stat:processed", 5)
    reports.set("stat:processed", 7)
    each = each_shard(Stats)
    assert summed(each)["processed"] == 12
    assert summed(s.as_dict() for s in each.values()) == summed(each)
    assert summed(each.values())["processed"] == 12


def test_summed_says_what_it_takes() -> None:
    with pytest.raises(TypeError, match=r"summed\(each_shard\(Stats\)\).*got str 'default'"):
        summed(["default"])  # type: ignore[list-item]
