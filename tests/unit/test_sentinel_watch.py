"""The thread that asks the Sentinels for the primary lets go of a pool its client dropped:
kept, each reset or new URL left one more pool asked twice a second, its sockets open."""

from __future__ import annotations

import gc

from helpers import wait_for
from sidequest import sentinel_watch


class Pool:
    asked = 0

    def get_master_address(self) -> None:
        Pool.asked += 1


def test_a_dropped_pool_is_no_longer_asked() -> None:
    watch = sentinel_watch._Watch()
    pool = Pool()
    watch.add(pool)
    wait_for(lambda: Pool.asked >= 2, 5, "the pool asked twice")
    del pool
    gc.collect()
    wait_for(lambda: not watch.pools(), 5, "the dropped pool let go")
