"""Sidequest's pusher (its job is bench.jobs.Noop): perform_async, and perform_bulk."""

from __future__ import annotations

from collections.abc import Sequence

import sidequest
from bench.agents import common
from bench.jobs import Noop


def setup() -> None:
    sidequest.configure(common.redis_url())


def push_one(i: int, pushed_at: float | None) -> None:
    if pushed_at is None:
        Noop.perform_async(i)
    else:
        Noop.perform_async(i, pushed_at)


def push_many(ids: Sequence[int]) -> None:
    Noop.perform_bulk([[i] for i in ids], batch_size=common.BATCH)
