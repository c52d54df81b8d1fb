"""A real Django project (djproject + the shop app, SQLite) against the suite's real
redis-server; workers are ``python manage.py sidequest`` subprocesses.

Run with a Django environment (``make check-django``: nox sessions django6 and django52);
the main environment has no Django and does not collect this folder (tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_server import RedisServer, free_port

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # djproject and shop import as top-level packages


def project_env(redis_url: str, database: Path) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "djproject.settings",
            "SHOP_REDIS_URL": redis_url, "SHOP_DB": str(database),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="session")
def project(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Django set up in this process with a migrated SQLite file; returns that file."""
    database = tmp_path_factory.mktemp("django") / "shop.sqlite3"
    os.environ.update(project_env(redis_server.url, database))
    from django.core.management import call_command

    import django

    django.setup()
    call_command("migrate", verbosity=0)
    return database


@pytest.fixture
def redis_down(project: Path) -> Iterator[str]:
    """Sidequest pointed, for the test, at a port nothing listens on (Redis down, as a real
    connection sees it: refused); the suite's Redis again afterwards. Returns that URL."""
    from sidequest import connection

    before = connection.default_url()
    down = f"redis://127.0.0.1:{free_port()}/0"
    connection.set_url(down)
    try:
        yield down
    finally:
        connection.set_url(before)


@pytest.fixture
def events(project: Path) -> Iterator[None]:
    """A clean Event table for the test."""
    from shop.models import Event, Order

    Event.objects.all().delete()
    Order.objects.all().delete()
    yield


def start_worker(database: Path, redis_url: str, *flags: str,
                 settings: str = "djproject.settings") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "manage.py"), "sidequest", *flags], cwd=HERE,
        env={**project_env(redis_url, database), "DJANGO_SETTINGS_MODULE": settings},
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen[str]) -> str:
    """TERM, wait, and return what it logged (killed if it does not stop in time)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.fixture(scope="module")
def worker(project: Path, redis_server: RedisServer) -> Iterator[subprocess.Popen[str]]:
    """One worker for the module: ``manage.py sidequest`` with the settings' queues plus
    emails, one thread (so consecutive jobs share a thread and its connection)."""
    proc = start_worker(project, redis_server.url, "-c", "1", "-q", "critical", "-q",
                        "default", "-q", "emails")
    try:
        yield proc
    finally:
        out = stop_worker(proc)
        if proc.returncode not in (0, -signal.SIGTERM):
            print(out)
