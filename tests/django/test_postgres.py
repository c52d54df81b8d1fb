"""On PostgreSQL with persistent connections: a worker whose database restarted between two
jobs runs the second one at its first attempt (the connection is checked, found dead and
replaced before the job uses it), as Django does between two requests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import PostgresServer, binaries

from conftest import HERE, project_env, stop_worker
from helpers import wait_for
from redis_server import RedisServer

pytestmark = pytest.mark.usefixtures("project")  # Django set up here: pushes from the test


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = binaries()
    if bin_dir is None:
        message = "PostgreSQL is not installed: apt-get install postgresql (make check-django)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's own temporary directory: its mode keeps the postgres user out.
    base = Path(tempfile.mkdtemp(prefix="sidequest-pg-"))
    server = PostgresServer(bin_dir, base)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def seen(server: PostgresServer, key: str) -> list[str]:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=server.port, user="postgres",
                         dbname="postgres") as conn:
        rows = conn.execute("SELECT value FROM shop_event WHERE kind = 'order-seen' AND "
                            "key = %s", (key,)).fetchall()
    return [row[0] for row in rows]


def test_a_job_after_the_database_restarted_succeeds(postgres: PostgresServer,
                                                     redis_server: RedisServer) -> None:
    from shop.jobs import RecordOrder

    env = {**project_env(redis_server.url, Path("unused.sqlite3")),
           "DJANGO_SETTINGS_MODULE": "djproject.settings_pg", "SHOP_PG_PORT": str(postgres.port)}
    subprocess.run([sys.executable, str(HERE / "manage.py"), "migrate", "-v", "0"], env=env,
                   cwd=HERE, check=True, timeout=120)
    # One thread: both jobs use the same persistent connection.
    worker = subprocess.Popen(
        [sys.executable, str(HERE / "manage.py"), "sidequest", "-c", "1", "-q", "pg"],
        cwd=HERE, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        RecordOrder.set(queue="pg").perform_async(1)
        wait_for(lambda: seen(postgres, "1"), 60, "the job before the restart")
        postgres.restart()  # a fast stop closes the worker's connection under it
        second = RecordOrder.set(queue="pg").perform_async(2)
        assert wait_for(lambda: seen(postgres, "2"), 60, "the job after it") == ["0"]
    finally:
        log = stop_worker(worker)
    failures = [line for line in log.splitlines() if "fail" in line and str(second) in line]
    assert failures == [], log  # its first attempt succeeded: no failure, no retry
