"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import sidequest
from sidequest import client, connection, testing


@pytest.fixture
def fake_without_redis() -> Iterator[None]:
    """testing.fake(), with Sidequest pointed at a port nothing listens on: any use of Redis
    raises, so a test shows that the testing mode needs none."""
    testing.clear_all()
    sidequest.configure(redis_url="redis://127.0.0.1:1/0")
    try:
        with testing.fake():
            yield
    finally:
        testing.clear_all()
        connection.reset()


@pytest.fixture
def pushed() -> Iterator[list[dict[str, Any]]]:
    """What reaches the write step, captured instead of written to Redis."""
    sent: list[dict[str, Any]] = []
    previous = client.set_push_override(sent.extend)
    try:
        yield sent
    finally:
        client.set_push_override(previous)

