"""A duplicate unique push through ``sidequest.enqueue`` writes nothing and returns None, as
the README says and ``perform_async`` does (it returned "" once: falsy, but no jid)."""

from __future__ import annotations

import pytest
import redis

import sidequest

pytestmark = pytest.mark.redis


def test_a_duplicate_unique_push_by_name_returns_none(r: redis.Redis) -> None:
    first = sidequest.enqueue("tests.ByNameUnique", 1, queue="u", unique_for=60)
    again = sidequest.enqueue("tests.ByNameUnique", 1, queue="u", unique_for=60)
    assert isinstance(first, str) and first
    assert again is None
    assert r.llen("queue:u") == 1
