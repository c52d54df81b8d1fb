"""Redis harness: one real redis-server per session, an empty database per test."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_server import RedisServer  # tests/ is on sys.path (pyproject: pythonpath)

INSTALL_HINT = "redis-server is missing: run 'sudo apt-get install redis-server' (or `make redis`)"
INTEGRATION_DIR = (Path(__file__).parent / "integration").resolve()
INTEROP_DIR = (Path(__file__).parent / "interop").resolve()
DJANGO_DIR = (Path(__file__).parent / "django").resolve()

# tests/django runs in environments of its own that have Django (`make check-django`); an
# environment without it does not collect that folder.
collect_ignore_glob = [] if importlib.util.find_spec("django") else ["django/*"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--integration-share", metavar="K/N", default=None,
        help="run the K-th of N shares of tests/integration's files (0-based, by sorted path; "
             "other tests all run): `make test` splits them between the extra Pythons, "
             "which the main one already covers whole")
    parser.addoption(
        "--share", metavar="K/N", default=None,
        help="run every N-th collected test starting at the K-th (0-based): `make test` runs "
             "the fault tests as side-by-side shares")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _keep_integration_share(config, items)
    _keep_share(config, items)
    # Everything under tests/integration and tests/interop needs Redis; tests/unit never
    # starts it. tests/interop also needs Ruby Sidekiq (`-m "not interop"` leaves it out).
    fault_dir = (Path(__file__).parent / "fault").resolve()
    for item in items:
        parents = Path(item.path).resolve().parents
        if INTEGRATION_DIR in parents or DJANGO_DIR in parents:
            item.add_marker(pytest.mark.redis)
        elif INTEROP_DIR in parents:
            item.add_marker(pytest.mark.redis)
            item.add_marker(pytest.mark.interop)
        elif fault_dir in parents:  # worker subprocesses under injected faults
            item.add_marker(pytest.mark.redis)
            item.add_marker(pytest.mark.fault)


def _parse_share(config: pytest.Config, option: str) -> tuple[int, int] | None:
    share = config.getoption(option)
    if share is None:
        return None
    try:
        k, n = (int(part) for part in share.split("/"))
        if not 0 <= k < n:
            raise ValueError(share)
    except ValueError:
        raise pytest.UsageError(f"{option} {share!r}: give K/N with 0 <= K < N, "
                                "as in 0/2") from None
    return k, n


def _deselect(config: pytest.Config, items: list[pytest.Item], dropped: list[pytest.Item]) -> None:
    if dropped:
        gone = {id(item) for item in dropped}
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if id(item) not in gone]


def _keep_integration_share(config: pytest.Config, items: list[pytest.Item]) -> None:
    share = _parse_share(config, "--integration-share")
    if share is None:
        return
    k, n = share
    path_of = {item: Path(item.path).resolve() for item in items}
    files = sorted({path for path in path_of.values() if INTEGRATION_DIR in path.parents})
    others = set(files) - set(files[k::n])
    _deselect(config, items, [item for item in items if path_of[item] in others])


def _keep_share(config: pytest.Config, items: list[pytest.Item]) -> None:
    # By test rather than by file: a few fault files hold most of the minutes, so shares of
    # files came out lopsided.
    share = _parse_share(config, "--share")
    if share is None:
        return
    k, n = share
    _deselect(config, items, [item for i, item in enumerate(items) if i % n != k])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    executable = shutil.which("redis-server")
    if executable is None:
        # In CI a missing server is a broken setup, not a reason to skip silently.
        if os.environ.get("CI") == "true":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    directory = tmp_path_factory.mktemp("redis")
    # The free port can be grabbed by someone else before redis binds it: retry.
    for attempt in range(3):
        server = RedisServer(executable, directory)
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    if not redis_server.running:  # a fault test stopped it and did not restart it
        redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    # Imported here so that unit tests collect without the package being importable.
    import sidequest
    import sidequest.connection

    sidequest.configure(redis_url=redis_server.url)
    try:
        yield redis_server.url
    finally:
        sidequest.connection.reset()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def second_redis(tmp_path_factory: pytest.TempPathFactory,
                 redis_server: RedisServer) -> Iterator[RedisServer]:
    """A second redis-server: the sharding tests' shard beside the default one."""
    server = RedisServer(redis_server.executable, tmp_path_factory.mktemp("shard2"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def two_shards(redis_url: str,
               second_redis: RedisServer) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    """Sidequest configured with the default Redis and shard "reports" on the second, which
    holds queues reports and exports; yields raw clients (default, reports), both emptied."""
    with second_redis.client() as other:
        other.flushall()
    import sidequest  # here, as in redis_url: unit tests collect without the package
    import sidequest.connection

    sidequest.configure(redis_url, shards={"reports": second_redis.url},
                        shard_queues={"reports": "reports", "exports": "reports"})
    first, other = redis.Redis.from_url(redis_url), second_redis.client()
    try:
        yield first, other
    finally:
        first.close()
        other.close()
        sidequest.connection.reset()
