"""The SIDEQUEST settings (the config file's keys and checks) and the system check of the
database connections against the worker's concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from redis_server import RedisServer, free_port
from sidequest.errors import ConfigError


def manage(project: Path, redis_server: RedisServer, *args: str,
           settings: str = "djproject.settings") -> subprocess.CompletedProcess[str]:
    from conftest import HERE, project_env

    env = {**project_env(redis_server.url, project), "DJANGO_SETTINGS_MODULE": settings}
    return subprocess.run([sys.executable, str(HERE / "manage.py"), *args], env=env, cwd=HERE,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_misspelt_setting_is_a_system_check_error(project: Path,
                                                    redis_server: RedisServer) -> None:
    # Before: a traceback out of Django's startup, for every manage.py command.
    bad = manage(project, redis_server, "check", settings="djproject.settings_typo")
    assert bad.returncode != 0
    assert ("(sidequest.E001) settings.SIDEQUEST: unknown setting 'concurency'; did you mean "
            "'concurrency'?") in bad.stderr
    assert "Traceback" not in bad.stderr


#: What a web process does with Sidequest: each use, and whether it was refused.
WEB_PROCESS = """
from django.db import transaction
from shop.jobs import NotifyOnCommit, RecordOrder
from shop.tasks import add
from sidequest.errors import ConfigError

def on_commit():
    with transaction.atomic():
        try:
            NotifyOnCommit.perform_async(1)
        except ConfigError as exc:  # at the call, where the transaction can roll back
            raise ConfigError(f"{exc} (at the call)") from None

for name, use in [("push", lambda: RecordOrder.perform_async(1)),
                  ("task", lambda: add.enqueue(1, 2)), ("on_commit", on_commit)]:
    try:
        use()
        print(name, "pushed")
    except ConfigError as exc:
        print(name, "refused:", exc)
"""


@pytest.mark.parametrize("default_redis", ["up", "down"])
def test_a_web_process_with_a_misspelt_setting_refuses_every_push(
        project: Path, redis_server: RedisServer, default_redis: str) -> None:
    """A web server runs no system checks: its first push fails with the error, and no job
    goes to the default Redis (as $REDIS_URL: the suite's, or a port nothing listens on,
    where the error would otherwise be that Redis is unreachable)."""
    from conftest import HERE, project_env

    default = redis_server.url if default_redis == "up" else (
        f"redis://127.0.0.1:{free_port()}/0")
    env = {**project_env(redis_server.url, project), "REDIS_URL": default,
           "DJANGO_SETTINGS_MODULE": "djproject.settings_typo"}
    with redis_server.client() as r:
        r.flushall()
        done = subprocess.run([sys.executable, str(HERE / "manage.py"), "shell", "-c",
                               WEB_PROCESS], env=env, cwd=HERE, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        said = ("refused: settings.SIDEQUEST: unknown setting 'concurency'; did you mean "
                "'concurrency'?")
        lines = done.stdout.strip().splitlines()[-3:]  # after Django's auto-import note
        assert lines == [f"push {said}", f"task {said}", f"on_commit {said} (at the call)"]
        assert r.keys("*") == []  # nothing written, not even the task's result


def test_a_bad_setting_is_named_by_the_check(project: object) -> None:
    from django.test import override_settings

    from sidequest.contrib.django.checks import settings_valid

    with override_settings(SIDEQUEST={"redis_ulr": "redis://redis:6379/0"}):
        (error,) = settings_valid()
    assert error.id == "sidequest.E001" and error.is_serious()
    assert error.msg == ("settings.SIDEQUEST: unknown setting 'redis_ulr'; did you mean "
                         "'redis_url'?")
    assert settings_valid() == []


@pytest.mark.parametrize(("value", "said"), [
    (42, "got 42"), ("change_user", "got 'change_user'"), ("auth.", "got 'auth.'"),
    (["auth.change_user"], "got ['auth.change_user']"),
    ("auth.change_user ", "got 'auth.change_user '"),  # has_perm() would refuse everyone
])
def test_a_bad_dashboard_permission_is_named_by_the_check(project: object, value: object,
                                                          said: str) -> None:
    from django.test import override_settings

    from sidequest.contrib.django import conf
    from sidequest.contrib.django.checks import settings_valid

    with override_settings(SIDEQUEST={"dashboard_permission": value}):
        (error,) = settings_valid()
        # The dashboard's own setting: it stops no push and no worker.
        assert conf.values() == {} and conf.worker_config() is not None
    assert error.id == "sidequest.E003"
    assert error.msg == ("settings.SIDEQUEST['dashboard_permission'] must be a permission name"
                         " as user.has_perm() takes it, 'app_label.codename' (such as"
                         f" 'auth.change_user'), or be left out to let every staff user in;"
                         f" {said}")


def test_a_dashboard_permission_is_no_setting_of_the_worker(project: object) -> None:
    from django.test import override_settings

    from sidequest.contrib.django import conf
    from sidequest.contrib.django.checks import settings_valid

    with override_settings(SIDEQUEST={"DASHBOARD_PERMISSION": "auth.change_user",
                                      "concurrency": 3}):
        assert settings_valid() == []
        assert conf.values() == {"concurrency": 3}  # the worker's Config has no such field
        assert conf.dashboard_permission() == "auth.change_user"
    with override_settings(SIDEQUEST={"dashboard_permision": "auth.change_user"}):
        (error,) = settings_valid()
    assert error.msg == ("settings.SIDEQUEST: unknown setting 'dashboard_permision'; did you"
                         " mean 'dashboard_permission'?")


def test_values_are_checked_and_flags_win(project: object) -> None:
    from django.test import override_settings

    from sidequest.contrib.django import conf

    with override_settings(SIDEQUEST={"CONCURRENCY": 3, "queues": ["critical,2", "low"]}):
        config = conf.worker_config()
        assert config.concurrency == 3 and config.queues == (("critical", 2), ("low", 0))
        # The worker's flags win over the settings, as they do over a config file.
        from sidequest import runner

        flags = runner.parser().parse_args(["-c", "7"])
        config = runner.config_from_args(flags, base=conf.values(), base_source=conf.SOURCE)
        assert config.concurrency == 7 and config.queues == (("critical", 2), ("low", 0))
    with override_settings(SIDEQUEST={"concurrency": 0}), pytest.raises(
            ConfigError, match=r"^settings.SIDEQUEST: concurrency must be a whole number"):
        conf.worker_config()
    with override_settings(SIDEQUEST=["concurrency", 3]), pytest.raises(
            ConfigError, match="must be a dict"):
        conf.worker_config()


def test_a_shutdown_timeout_is_not_taken_for_dead_timeout(project: object) -> None:
    from django.test import override_settings

    from sidequest.contrib.django import conf

    with override_settings(SIDEQUEST={"SHUTDOWN_TIMEOUT": 5}), pytest.raises(
            ConfigError, match=r"^settings.SIDEQUEST: unknown setting 'shutdown_timeout'; did "
                               r"you mean 'timeout'\? It is the seconds a stopping worker"):
        conf.worker_config()


def misnamed(**names: Any) -> list[tuple[str, str]]:
    """The check's warnings, as (message, hint), with SIDEQUEST unset and ``names`` set."""
    from django.conf import settings
    from django.test import override_settings

    from sidequest.contrib.django.checks import settings_name

    with override_settings(**names):
        del settings.SIDEQUEST
        found = settings_name()
    assert {m.id for m in found} <= {"sidequest.W003"}
    return [(m.msg, m.hint) for m in found]


def test_a_misnamed_sidequest_setting_is_named(project: object) -> None:
    for name in ("SIDEKIQ", "SIDE_QUEST", "SIDEQEUST", "SIDEQUEST_SETTINGS", "SIDEQUEST_CONFIG"):
        ((message, hint),) = misnamed(**{name: {"concurrency": 3}})
        assert message.startswith(f"settings.{name} is set but settings.SIDEQUEST is not: "
                                  f"Sidequest reads its settings from SIDEQUEST only, so "
                                  f"{name} is ignored"), message
        assert hint == f"rename {name} to SIDEQUEST"
    ((_, hint),) = misnamed(SIDEQUEST_REDIS_URL="redis://redis:6379/0")
    assert hint == "write it in the SIDEQUEST dict: SIDEQUEST = {'redis_url': ...}"
    assert misnamed(SECURE_HSTS=1, SIDE_MENU=[]) == []  # not close enough
    assert misnamed() == []  # no SIDEQUEST at all is no mistake: the defaults apply


def test_manage_py_check_names_a_misnamed_setting(project: Path,
                                                  redis_server: RedisServer) -> None:
    out = manage(project, redis_server, "check", settings="djproject.settings_misnamed")
    assert out.returncode == 0, out.stderr
    assert "(sidequest.W003) settings.SIDEKIQ is set but settings.SIDEQUEST is not" in out.stderr
    assert "HINT: rename SIDEKIQ to SIDEQUEST" in out.stderr


def check_ids(**databases: Any) -> list[str]:
    from django.test import override_settings

    from sidequest.contrib.django.checks import connections_for_concurrency

    with override_settings(DATABASES=databases, SIDEQUEST={"concurrency": 10}):
        return [m.id for m in connections_for_concurrency()]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_system_check_of_pools_and_persistent_connections(project: object) -> None:
    pg = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop"}
    assert check_ids(default={**pg, "OPTIONS": {"pool": {"max_size": 4}}}) == ["sidequest.W001"]
    assert check_ids(default={**pg, "OPTIONS": {"pool": True}}) == ["sidequest.W001"]
    assert check_ids(default={**pg, "OPTIONS": {"pool": {"max_size": 11}}}) == []
    assert check_ids(default={**pg, "CONN_MAX_AGE": 60}) == ["sidequest.W002"]
    assert check_ids(default={**pg, "CONN_MAX_AGE": None}) == ["sidequest.W002"]
    assert check_ids(default={**pg, "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}) == []
    assert check_ids(default=pg) == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_persistent_sqlite_connections_are_not_warned_of(project: object) -> None:
    """SQLite has no server to restart under an open connection: W002's advice (health
    checks, or no persistent connections) was noise for every SQLite project."""
    sqlite = {"NAME": "shop.sqlite3", "CONN_MAX_AGE": 60}
    assert check_ids(default={**sqlite, "ENGINE": "django.db.backends.sqlite3"}) == []
    assert check_ids(default={**sqlite, "ENGINE": "myproject.backends.sqlite3"}) == []
    pg = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "CONN_MAX_AGE": 60}
    assert check_ids(default={**sqlite, "ENGINE": "django.db.backends.sqlite3"},
                     reports=pg) == ["sidequest.W002"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_the_worker_commands_concurrency_is_judged(project: object) -> None:
    """Under manage.py sidequest, the concurrency it runs with (its -c), not the settings'."""
    import dataclasses

    from django.test import override_settings

    from sidequest.contrib.django import conf
    from sidequest.contrib.django.checks import connections_for_concurrency

    pool = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop",
                        "OPTIONS": {"pool": {"max_size": 6}}}}
    with override_settings(DATABASES=pool, SIDEQUEST={"concurrency": 2}):
        assert connections_for_concurrency() == []  # 2 threads, and one for async jobs
        try:
            for threads, found in ((20, ["sidequest.W001"]), (5, [])):
                config = dataclasses.replace(conf.worker_config(), concurrency=threads)
                conf.command = conf.Command(config, "the worker's -c")
                assert [m.id for m in connections_for_concurrency()] == found, threads
        finally:
            conf.command = None


def test_manage_py_check_reports_it(project: Path, redis_server: RedisServer) -> None:
    out = manage(project, redis_server, "check", settings="djproject.settings_persistent")
    assert out.returncode == 0, out.stderr
    assert "sidequest.W002" in out.stderr and "CONN_HEALTH_CHECKS" in out.stderr
    assert "DATABASES['reports'] keeps connections open" in out.stderr
    assert "DATABASES['default']" not in out.stderr  # SQLite: nothing to restart
    assert "sidequest.W" not in manage(project, redis_server, "check").stderr


#: A settings module that sets the shards in code, before the app's ready() configures the
#: Redis URL from SIDEQUEST (which names no shards).
SHARDS_IN_CODE = """
import os
import sidequest
from djproject.settings import *  # noqa: F403

sidequest.configure(os.environ["SHOP_REDIS_URL"], shards={"reports": os.environ["SHARD_URL"]},
                    shard_queues={"reports": "reports"})
"""


def test_shards_set_in_code_survive_the_apps_configuration(
        project: Path, redis_server: RedisServer, second_redis: RedisServer,
        tmp_path: Path) -> None:
    (tmp_path / "shards_in_code.py").write_text(SHARDS_IN_CODE, "utf-8")
    from conftest import HERE, project_env

    env = {**project_env(redis_server.url, project), "SHARD_URL": second_redis.url,
           "DJANGO_SETTINGS_MODULE": "shards_in_code"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    with second_redis.client() as shard:
        shard.flushall()
        done = subprocess.run(
            [sys.executable, str(HERE / "manage.py"), "shell", "-c",
             "import sidequest; print(sidequest.enqueue('x.Report', queue='reports'))"],
            env=env, cwd=HERE, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert shard.llen("queue:reports") == 1  # not stranded on the default Redis


def task_queue_warnings(sidequest: dict[str, Any], **backend: Any) -> list[tuple[str, str]]:
    """sidequest.W004's (message, hint) pairs for one SidequestBackend's settings."""
    from django.test import override_settings

    from sidequest.contrib.django.checks import task_queues_served

    tasks = {"default": {"BACKEND": "sidequest.contrib.django.SidequestBackend", **backend}}
    with override_settings(SIDEQUEST=sidequest, TASKS=tasks):
        found = task_queues_served()
    assert {m.id for m in found} <= {"sidequest.W004"}
    return [(m.msg, m.hint) for m in found]


def test_a_task_queue_no_worker_serves_is_named(project: object) -> None:
    urgent = {"OPTIONS": {"PRIORITY_QUEUES": [(50, "urgent")]}}
    ((message, hint),) = task_queue_warnings({"queues": ["critical", "default"]}, **urgent)
    assert message == (
        "TASKS['default'] sends tasks to queue 'urgent' (its OPTIONS['PRIORITY_QUEUES']), but"
        " that queue is not among SIDEQUEST['queues'] ('critical', 'default'): a worker"
        " started with the settings' queues never runs those tasks, and they wait in Redis")
    assert hint == (
        "add 'urgent' to SIDEQUEST['queues'] beside the queues served now, or change"
        " TASKS['default']'s OPTIONS['PRIORITY_QUEUES']; if a worker of its own serves it"
        " (python manage.py sidequest -q urgent), silence this with"
        " SILENCED_SYSTEM_CHECKS = ['sidequest.W004']")
    # SIDEQUEST['queues'] unset: the worker serves 'default' alone.
    ((message, _),) = task_queue_warnings({}, QUEUES=["default", "emails"])
    assert "queue 'emails' (its QUEUES)" in message
    assert "not among the queues the worker serves by default ('default'" in message
    assert task_queue_warnings({"queues": ["urgent", "default,2"]}, **urgent) == []
    assert task_queue_warnings({}, QUEUES=[]) == []  # any queue: none known in advance
    # Not this backend's settings: Django's own backends do not use Sidequest's queues.
    from django.test import override_settings

    from sidequest.contrib.django.checks import task_queues_served

    with override_settings(TASKS={"default": {
            "BACKEND": "django.tasks.backends.immediate.ImmediateBackend",
            "QUEUES": ["elsewhere"]}}):
        assert task_queues_served() == []


def test_manage_py_check_runs_the_task_queue_check(project: object) -> None:
    from django.core.checks import run_checks
    from django.test import override_settings

    with override_settings(SIDEQUEST={"queues": ["default"]}):
        assert "sidequest.W004" in {m.id for m in run_checks()}
    assert "sidequest.W004" not in {m.id for m in run_checks()}  # the project's settings


def test_a_job_class_whose_queue_no_worker_serves_is_named(project: object) -> None:
    # A Celery project's task_routes moved over with one queue left out of the settings:
    # nothing said so, and the jobs waited in Redis.
    from django.test import override_settings

    from sidequest import Job, registry
    from sidequest.contrib.django.checks import job_queues_served

    # A class of an installed app's module; the test module's own classes are not checked.
    Mailer = type("Mailer", (Job,), {"__module__": "shop.jobs", "queue": "mailers",
                                     "perform": lambda self: None})

    try:
        with override_settings(SIDEQUEST={"queues": ["default"]}):
            found = [m for m in job_queues_served() if "Mailer" in m.msg]
        assert [m.id for m in found] == ["sidequest.W005"], found
        assert "goes to queue 'mailers', which is not among SIDEQUEST['queues'] ('default')" \
            in found[0].msg
        with override_settings(SIDEQUEST={"queues": ["default", "mailers"]}):
            assert not [m for m in job_queues_served() if "Mailer" in m.msg]
        from sidequest.contrib.django import conf

        conf.command, before = cast(Any, object()), conf.command  # manage.py sidequest -q ...
        try:
            with override_settings(SIDEQUEST={"queues": ["default"]}):
                assert not job_queues_served()  # it serves its own -q queues
        finally:
            conf.command = before

        class Local(Job):  # not in an installed app (a test module, a script)
            queue = "elsewhere"

            def perform(self) -> None: ...

        with override_settings(SIDEQUEST={"queues": ["default"]}):
            assert not [m for m in job_queues_served() if "Local" in m.msg]
        registry._jobs.pop(Local.wire_name(), None)
    finally:
        registry._jobs.pop(Mailer.wire_name(), None)
