"""Stats.queues lists queues largest first, as Sidekiq's Stats#queues does."""

from __future__ import annotations

import redis

from sidequest.api import Stats


def test_queues_are_ordered_by_size_largest_first(r: redis.Redis) -> None:
    sizes = {"alpha": 1, "bulk": 7, "critical": 3, "default": 3, "empty": 0}
    for name, size in sizes.items():
        r.sadd("queues", name)
        if size:
            r.lpush(f"queue:{name}", *[f'{{"n":{i}}}' for i in range(size)])
    stats = Stats()
    assert list(stats.queues.items()) == [
        ("bulk", 7), ("critical", 3), ("default", 3), ("alpha", 1), ("empty", 0),
    ]
