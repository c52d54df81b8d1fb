"""The SIDEQUEST settings (the config file's keys and checks) and the system check of the
database connections against the worker's concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redis_server import RedisServer
from sidequest.errors import ConfigError


def manage(project: Path, redis_server: RedisServer, *args: str,
           settings: str = "djproject.settings") -> subprocess.CompletedProcess[str]:
    from conftest import HERE, project_env

    env = {**project_env(redis_server.url, project), "DJANGO_SETTINGS_MODULE": settings}
    return subprocess.run([sys.executable, str(HERE / "manage.py"), *args], env=env, cwd=HERE,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_misspelt_setting_fails_startup_with_the_config_files_error(
        project: Path, redis_server: RedisServer) -> None:
    bad = manage(project, redis_server, "check", settings="djproject.settings_typo")
    assert bad.returncode != 0
    assert ("settings.SIDEQUEST: unknown setting 'concurency'; did you mean 'concurrency'?"
            in bad.stderr)


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


def test_manage_py_check_reports_it(project: Path, redis_server: RedisServer) -> None:
    out = manage(project, redis_server, "check", settings="djproject.settings_persistent")
    assert out.returncode == 0, out.stderr
    assert "sidequest.W002" in out.stderr and "CONN_HEALTH_CHECKS" in out.stderr
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
