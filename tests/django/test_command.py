"""``python manage.py sidequest`` as Django's own commands behave: the system checks run
before the worker starts (warnings shown, errors refuse it), and the ``sidequest`` command's
views of Redis (``stats``, ``status``) read the Redis the SIDEQUEST settings name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Output
from redis_server import RedisServer, free_port

#: A settings module with a system check error of Django's own: no 'default' cache.
NO_DEFAULT_CACHE = """
from djproject.settings import *  # noqa: F403

CACHES = {}
"""


def command(*args: str) -> list[str]:
    from conftest import HERE

    return [sys.executable, str(HERE / "manage.py"), "sidequest", *args]


def environment(project: Path, redis_url: str, settings: str = "djproject.settings",
                pythonpath: Path | None = None) -> dict[str, str]:
    """The project's, with nothing on the environment's Redis variables: $REDIS_URL is a
    port nothing listens on, so only SIDEQUEST names the suite's Redis."""
    from conftest import project_env

    env = {k: v for k, v in project_env(redis_url, project).items()
           if not k.startswith("SIDEQUEST_")}
    env.update(DJANGO_SETTINGS_MODULE=settings, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env["PYTHONPATH"]])
    return env


def manage(project: Path, redis_url: str, *args: str, settings: str = "djproject.settings",
           pythonpath: Path | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    from conftest import HERE

    return subprocess.run(command(*args),
                          env=environment(project, redis_url, settings, pythonpath),
                          cwd=cwd or HERE, capture_output=True, text=True, timeout=60,
                          check=False)


def start(project: Path, redis_url: str, *args: str, settings: str = "djproject.settings",
          pythonpath: Path | None = None) -> tuple[subprocess.Popen[str], Output]:
    from conftest import HERE

    proc = subprocess.Popen(command("-c", "1", *args),
                            env=environment(project, redis_url, settings, pythonpath),
                            cwd=HERE, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    return proc, Output(proc)


def stopped(proc: subprocess.Popen[str], out: Output) -> list[str]:
    """TERM, and what it wrote; the checks' output comes before the start line waited for."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return out.lines


def test_the_worker_shows_the_system_checks_warnings(project: Path,
                                                     redis_server: RedisServer) -> None:
    # Before: SIDEKIQ instead of SIDEQUEST, and the worker started on the default Redis
    # without a word (only `manage.py check` said so). --redis-url: the suite's Redis all
    # the same, so that this worker never reads a Redis of the machine's own.
    proc, out = start(project, redis_server.url, "--redis-url", redis_server.url,
                      settings="djproject.settings_misnamed")
    out.wait_for("started: ", 30)
    lines = stopped(proc, out)
    text = "\n".join(lines)
    assert "System check identified some issues:" in text
    assert "(sidequest.W003) settings.SIDEKIQ is set but settings.SIDEQUEST is not" in text
    assert "HINT: rename SIDEKIQ to SIDEQUEST" in text


@pytest.fixture
def broken_settings(tmp_path: Path) -> Path:
    (tmp_path / "no_default_cache.py").write_text(NO_DEFAULT_CACHE, "utf-8")
    return tmp_path


def test_a_system_check_error_refuses_to_start_the_worker(
        project: Path, redis_server: RedisServer, broken_settings: Path) -> None:
    done = manage(project, redis_server.url, settings="no_default_cache",
                  pythonpath=broken_settings)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SystemCheckError: System check identified some issues:" in done.stderr
    assert "(caches.E001) You must define a 'default' cache" in done.stderr
    assert "started" not in done.stdout + done.stderr


def test_skip_checks_starts_it_all_the_same(project: Path, redis_server: RedisServer,
                                            broken_settings: Path) -> None:
    proc, out = start(project, redis_server.url, "--skip-checks", settings="no_default_cache",
                      pythonpath=broken_settings)
    out.wait_for(f"Redis {redis_server.url}", 30)
    assert not any("caches.E001" in line for line in stopped(proc, out))


@pytest.mark.parametrize("view", ["stats", "status"])
def test_stats_and_status_read_the_redis_of_the_settings(
        project: Path, redis_server: RedisServer, view: str) -> None:
    # Before: "unrecognized arguments: stats"; and `sidequest stats` reads $REDIS_URL, here a
    # port nothing listens on.
    import sidequest

    sidequest.enqueue("shop.jobs.RecordOrder", 1, queue="command-stats")
    done = manage(project, redis_server.url, view)
    assert done.returncode == 0, done.stderr
    assert "command-stats" in done.stdout


def test_status_with_no_worker_says_to_start_this_command(project: Path,
                                                          redis_server: RedisServer) -> None:
    # Before: "(sidequest -r yourapp.jobs -q <queue>)", which fails in a Django project
    # (its jobs import models before Django is set up).
    import sidequest

    with redis_server.client() as r:
        r.flushall()  # no worker of an earlier test still registered
    sidequest.enqueue("shop.jobs.RecordOrder", 1, queue="command-no-worker")
    done = manage(project, redis_server.url, "status")
    assert done.returncode == 0, done.stderr
    assert ("No Sidequest worker is running: jobs wait in their queues until one starts"
            " (python manage.py sidequest -q <queue>)") in done.stdout, done.stdout


def test_stats_reads_no_settings_file_as_the_worker_here_reads_none(
        project: Path, redis_server: RedisServer, tmp_path: Path) -> None:
    import sidequest

    (tmp_path / "sidequest.toml").write_text(f'redis_url = "redis://127.0.0.1:{free_port()}/0"')
    sidequest.enqueue("shop.jobs.RecordOrder", 1, queue="command-stats-file")
    done = manage(project, redis_server.url, "stats", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "command-stats-file" in done.stdout


def test_run_is_the_worker_as_in_the_sidequest_command(project: Path,
                                                       redis_server: RedisServer) -> None:
    done = manage(project, redis_server.url, "run", "-c", "0")
    assert done.returncode == 2
    assert "concurrency must be a whole number from 1 to 1000, got 0" in done.stderr


@pytest.mark.parametrize(("word", "said"), [
    ("web", "manage.py sidequest: web is not a command of manage.py sidequest: the dashboard is"
            " served by your project: add path('sidequest/',"
            " include('sidequest.contrib.django.urls')) to your urls"),
    ("stat", "manage.py sidequest: unknown command 'stat'; did you mean 'python manage.py"
             " sidequest stats'? the commands are run, stats, status, periodic (none: run)"),
    # Celery's habit: `celery -A proj worker`.
    ("worker", "manage.py sidequest: worker is Celery's command; here python manage.py"
               " sidequest is the worker itself, with its flags: python manage.py sidequest"
               " -c 10 -q default"),
])
def test_another_word_says_what_to_run_instead(project: Path, redis_server: RedisServer,
                                               word: str, said: str) -> None:
    done = manage(project, redis_server.url, word)
    assert done.returncode == 2
    assert said in done.stderr, done.stderr


@pytest.mark.parametrize("args", [(), ("stats",), ("--skip-checks",)])
def test_a_misspelt_setting_is_one_line_and_exit_2(project: Path, redis_server: RedisServer,
                                                   args: tuple[str, ...]) -> None:
    # Before: Django's startup raised it, a 25-line traceback and exit status 1.
    done = manage(project, redis_server.url, *args, settings="djproject.settings_typo")
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("manage.py sidequest: settings.SIDEQUEST: unknown setting "
                           "'concurency'; did you mean 'concurrency'?\n")


#: A settings module with a connection pool smaller than -c 20 needs, and than the settings'
#: concurrency (2) needs not. Nothing connects to it: the check is made before any job.
SMALL_POOL = """
from djproject.settings import *  # noqa: F403

DATABASES = {**DATABASES, "default": {  # noqa: F405
    "ENGINE": "django.db.backends.postgresql", "NAME": "shop", "HOST": "127.0.0.1",
    "PORT": "{port}", "OPTIONS": {"pool": {"max_size": 6}}}}
"""


def test_the_pool_is_checked_against_the_concurrency_of_the_flags(
        project: Path, redis_server: RedisServer, tmp_path: Path) -> None:
    (tmp_path / "small_pool.py").write_text(SMALL_POOL.replace("{port}", str(free_port())))
    # Before: SIDEQUEST's concurrency (2) was judged, the worker started silently with 20
    # threads, and most of its jobs failed with the pool's timeout.
    proc, out = start(project, redis_server.url, "-c", "20", "-q", "pool-check",
                      settings="small_pool", pythonpath=tmp_path)
    out.wait_for("started: ", 30)
    text = "\n".join(stopped(proc, out))
    assert ("(sidequest.W001) DATABASES['default'] has a connection pool of at most 6 "
            "connections, but a Sidequest worker process runs 20 jobs at once") in text, text
    assert ("HINT: set DATABASES['default']['OPTIONS']['pool'] = {'max_size': 21} or more, or"
            " lower the worker's -c (python manage.py sidequest -c N)") in text
    assert text.count("sidequest.W001") == 1  # the settings' concurrency is not judged too


def test_djangos_own_options_are_taken(project: Path, redis_server: RedisServer) -> None:
    from conftest import HERE

    # Before: "unrecognized arguments" for each.
    proc, out = start(project, redis_server.url, "-v", "2", "--traceback", "--no-color",
                      "--settings", "djproject.settings", "--pythonpath", str(HERE),
                      "-q", "options-check")
    out.wait_for("started: ", 30)
    stopped(proc, out)
    # --traceback: a configuration error as raised, as Django's commands show a CommandError.
    raised = manage(project, redis_server.url, "--traceback", "-c", "0")
    assert "Traceback" in raised.stderr
    assert ("sidequest.errors.ConfigError: concurrency must be a whole number from 1 to 1000,"
            " got 0") in raised.stderr
    assert "Traceback" not in manage(project, redis_server.url, "-c", "0").stderr
    both = manage(project, redis_server.url, "--no-color", "--force-color")
    assert both.returncode == 2
    assert "--no-color and --force-color options can't be used together" in both.stderr


def test_force_color_colours_the_checks_output(project: Path, redis_server: RedisServer) -> None:
    proc, out = start(project, redis_server.url, "--redis-url", redis_server.url,
                      "--force-color", settings="djproject.settings_misnamed")
    out.wait_for("started: ", 30)
    (line,) = [line for line in stopped(proc, out) if "sidequest.W003" in line]
    assert "\x1b[" in line  # ANSI colour, though the output is no terminal


@pytest.mark.parametrize(("flags", "level"), [
    ((), "INFO"), (("-v",), "DEBUG"), (("-v", "2"), "DEBUG"), (("--verbosity=3",), "DEBUG"),
    (("-v", "1"), "INFO"), (("-v", "0"), "WARNING"), (("-v", "0", "--log-level", "info"), "INFO"),
])
def test_verbosity_is_the_log_level(project: object, flags: tuple[str, ...],
                                    level: str) -> None:
    from sidequest import runner
    from sidequest.contrib.django import conf
    from sidequest.contrib.django.management.commands import sidequest

    args = sidequest.Command().create_parser("manage.py", "sidequest").parse_args(flags)
    sidequest._apply_verbosity(args)
    config = runner.config_from_args(args, base=conf.values(), base_source=conf.SOURCE)
    assert config.log_level == level
