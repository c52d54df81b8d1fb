"""``python manage.py sidequest`` runs the project's autodiscovered jobs (no -r), with the
database connections checked around each job in its own thread."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wait_for
from redis_server import RedisServer

pytestmark = pytest.mark.usefixtures("events")


def seen(kind: str, key: str) -> list[str]:
    from shop.models import Event

    return list(Event.objects.filter(kind=kind, key=key).values_list("value", flat=True))


def test_jobs_py_is_autodiscovered_and_run(worker: subprocess.Popen[str]) -> None:
    from shop.jobs import RecordOrder
    from shop.models import Order

    Order.objects.create(number=41)
    RecordOrder.perform_async(41)
    assert wait_for(lambda: seen("order-seen", "41"), 30, "the job's row") == ["1"]


def test_a_connection_broken_between_jobs_is_replaced(worker: subprocess.Popen[str]) -> None:
    from shop.jobs import BreakConnection, RecordOrder

    # One thread (-c 1): the second job runs where the first left its connection closed.
    # Without close_old_connections around each job it would fail on it ("Cannot operate
    # on a closed database").
    BreakConnection.perform_async("a")
    wait_for(lambda: seen("broke", "a"), 30, "the breaking job")
    RecordOrder.perform_async(7)
    assert wait_for(lambda: seen("order-seen", "7"), 30, "the job after it") == ["0"]


def test_enqueue_on_commit_runs_after_the_commit(worker: subprocess.Popen[str]) -> None:
    import redis
    from django.conf import settings
    from django.db import transaction
    from shop.jobs import NotifyOnCommit, RecordOrder
    from shop.models import Order

    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    with transaction.atomic():
        Order.objects.create(number=5)
        RecordOrder.set(enqueue_on_commit=True).perform_async(5)
        NotifyOnCommit.perform_async(5)
        assert r.llen("queue:default") == 0  # nothing is pushed before the commit
    # The worker saw the committed row: the push came after the commit.
    assert wait_for(lambda: seen("order-seen", "5"), 30, "the job") == ["1"]
    wait_for(lambda: seen("notified", "5"), 30, "the class-option job")

    with pytest.raises(RuntimeError), transaction.atomic():
        NotifyOnCommit.perform_async(6)
        raise RuntimeError("roll back")
    NotifyOnCommit.perform_async(8)  # outside a transaction: at once
    wait_for(lambda: seen("notified", "8"), 30, "the job pushed outside a transaction")
    assert seen("notified", "6") == []  # rolled back: never pushed


def test_an_unknown_job_says_where_django_finds_jobs(worker: subprocess.Popen[str]) -> None:
    import json

    import redis
    from django.conf import settings

    import sidequest

    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    jid = sidequest.enqueue("billing.jobs.Invoice", 1)  # no such module in this project

    def failed() -> list[bytes]:
        return [raw for raw in r.zrange("retry", 0, -1) if json.loads(raw)["jid"] == jid]

    (raw,) = wait_for(failed, 30, "the unknown job in the retry set")
    r.zrem("retry", raw)
    entry = json.loads(raw)
    assert ("no job class named 'billing.jobs.Invoice' is loaded in this process; define it in"
            " an installed app's jobs.py (each is imported at startup) or pass its module to the"
            " worker (python manage.py sidequest -r yourapp.module), and check that its name"
            " matches") in str(entry["error_message"])


def test_the_worker_takes_the_cli_flags(project: Path, redis_server: RedisServer) -> None:
    from conftest import HERE, project_env

    env = project_env(redis_server.url, project)
    help_text = subprocess.run(
        [sys.executable, str(HERE / "manage.py"), "sidequest", "--help"], env=env, cwd=HERE,
        capture_output=True, text=True, check=True).stdout
    for flag in ("--concurrency", "--queue", "--max-memory", "--redis-url"):
        assert flag in help_text
    # Not the sidequest command's list of commands (web and dev are not this one's), but
    # the views of Redis it runs over the settings' Redis.
    flat = " ".join(help_text.split())
    django_help = subprocess.run(
        [sys.executable, str(HERE / "manage.py"), "help", "sidequest"], env=env, cwd=HERE,
        capture_output=True, text=True, check=True).stdout
    assert " ".join(django_help.split()) == flat
    assert ("Redis URL (default: the -C file's redis_url, SIDEQUEST['redis_url'] in the Django"
            " settings, $SIDEQUEST_REDIS_URL, $REDIS_URL, redis://localhost:6379/0)") in flat
    assert "Commands:" not in flat and "Example: python manage.py sidequest -c 10" in flat
    assert "Also: python manage.py sidequest stats | status [--watch] | periodic" in flat
    assert "--skip-checks" in flat
    bad = subprocess.run(
        [sys.executable, str(HERE / "manage.py"), "sidequest", "-c", "0"], cwd=HERE,
        env={**env, "SIDEQUEST_SHARD_QUEUE": "reports=eu"},
        capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert "concurrency must be a whole number from 1 to 1000, got 0" in bad.stderr
    assert ("manage.py sidequest: warning: $SIDEQUEST_SHARD_QUEUE is set but Sidequest does not"
            " read it; did you mean $SIDEQUEST_SHARD_QUEUES?") in bad.stderr


def test_async_jobs_use_the_async_orm(worker: subprocess.Popen[str]) -> None:
    from shop.jobs import RecordAsync
    from shop.models import Order

    Order.objects.create(number=1)
    RecordAsync.perform_async("a1")
    assert wait_for(lambda: seen("async", "a1"), 30, "the async job's row") == ["1"]
