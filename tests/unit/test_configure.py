"""sidequest.configure's keyword arguments go to redis-py: a name redis-py does not take is
refused at the call, naming it, rather than at the first push from inside redis-py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import sidequest
from sidequest import connection
from sidequest.errors import ConfigError


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    try:
        yield
    finally:
        connection.reset()


@pytest.mark.parametrize(("options", "says"), [
    ({"redis": "redis://h:6379/0"}, r"unknown Redis client option 'redis'; pass the URL as"
                                    r" the first argument"),
    ({"socket_timout": 3}, r"unknown Redis client option 'socket_timout'; did you mean"
                           r" 'socket_timeout'\?"),
    ({"frobnicate": 1}, r"unknown Redis client option 'frobnicate'; extra keyword arguments"
                        r" go to the redis-py client"),
    ({"shard_queue": {}}, r"unknown Redis client option 'shard_queue'; did you mean"
                          r" 'shard_queues'\?"),
    ({"single_connection_client": True}, r"single_connection_client is not supported: .*"
                                         r"remove it"),
])
def test_an_option_redis_py_does_not_take_is_refused(options: dict[str, object],
                                                     says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        sidequest.configure("redis://127.0.0.1:6379/0", **options)


def test_redis_py_options_are_accepted() -> None:
    sidequest.configure("redis://127.0.0.1:6379/0", socket_timeout=3, max_connections=20,
                        ssl_cert_reqs="required", client_name="shop", decode_responses=False)
    assert connection._options["max_connections"] == 20


def test_sentinel_options_are_accepted() -> None:
    sidequest.configure("redis+sentinel://127.0.0.1:26379/mymaster/0", min_other_sentinels=1,
                        sentinel_kwargs={"password": "x"})
    assert connection._options["min_other_sentinels"] == 1
