"""Dashboard fixtures: the app on the suite's real Redis, and clients logged in or not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from sidequest.web import create_app
from web_helpers import PASSWORD, Client


@pytest.fixture
def app(redis_url: str) -> Starlette:
    return create_app(password=PASSWORD, secret_key="test-secret-" + "x" * 32)


@pytest.fixture
def anon(app: Starlette) -> Iterator[Client]:
    with Client(app) as client:
        yield client


@pytest.fixture
def client(app: Starlette) -> Iterator[Client]:
    with Client(app) as client:
        assert client.login().status_code == 303
        yield client
