"""A newcomer's first hour with the ``sidequest`` command, the parts that need no Redis:
flags from Celery, a class path as -r, a module that raises, -e over SIDEQUEST_ENV, a
--max-memory below the worker's own size, a database that is not a number, and the
settings file read without -C."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidequest import config, environ, monitor, runner, urls
from sidequest.app_loader import load_app
from sidequest.errors import ConfigError
from sidequest.runner import config_from_args, parser


def refusal(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What the parser says on refusing ``args`` (it exits 2)."""
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(args)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("args", "hint"), [
    (["-A", "app"], "-A is Celery's app; here -r names the module that defines your jobs"),
    (["--app=app"], "--app is Celery's app; here -r names the module"),
    (["-Q", "critical"], "-Q is Celery's queue list; here it is -q, once per queue:"
                         " -q critical -q default"),
    (["-l", "info"], "-l is Celery's log level; here it is --log-level"),
    (["--loglevel", "info"], "--loglevel is Celery's log level; here it is --log-level"),
    (["-P", "prefork"], "nor Celery's pool (jobs run in -c threads)"),
    (["--pool=threads"], "--pool is Celery's; here jobs run in -c threads"),
    (["--autoscale", "10,3"], "--autoscale is Celery's; here -c sets the threads"),
    (["-B"], "-B is Celery's beat; here every worker runs the periodic jobs"),
    (["--hostname", "w1"], "--hostname is Celery's node name; here -g (--tag)"),
])
def test_celery_flags_say_what_they_are_called_here(
    args: list[str], hint: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert hint in refusal(args, capsys)


@pytest.mark.parametrize(("typed", "level"), [
    ("info", "INFO"), ("Debug", "DEBUG"), ("warning", "WARNING"), ("warn", "WARNING"),
    ("ERROR", "ERROR"),
])
def test_log_level_is_taken_in_any_case(typed: str, level: str) -> None:
    assert config_from_args(parser().parse_args(["--log-level", typed])).log_level == level


def test_an_unknown_log_level_is_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid choice: 'LOUD'" in refusal(["--log-level", "loud"], capsys)


def test_two_queues_after_one_q_say_to_repeat_it() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_args(parser().parse_args(["-q", "critical,default"]))
    assert "the weight after the comma must be a whole number" in str(caught.value)
    assert str(caught.value).endswith(
        '; for several queues repeat -q: -q critical -q default (["critical", "default"] in'
        " the settings file)")


@pytest.mark.parametrize("url", ["redis://localhost:6379/abc", "rediss://h:6380/db1",
                                 "redis://localhost:6379/0?db=x"])
def test_a_database_that_is_not_a_number_is_refused(url: str) -> None:
    # redis-py read it as database 0, without a word.
    with pytest.raises(ConfigError, match="the database must be a number, got"):
        urls.check_url(url)


@pytest.mark.parametrize("url", ["redis://localhost:6379/3", "redis://localhost:6379",
                                 "redis://localhost/", "redis://:p@h:1/x?db=2",
                                 "redis+sentinel://h:26379/mymaster/0", "unix:///tmp/r.sock"])
def test_databases_that_are_numbers_or_absent_are_kept(url: str) -> None:
    assert urls.check_url(url) == url


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project root holding an ``fhpkg`` package, as the working directory."""
    package = tmp_path / "fhpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(
        "from sidequest import Job\n\nclass FirstHourWelcome(Job):\n"
        "    def perform(self, user_id):\n        pass\n\n"
        "def helper():\n    pass\n")
    (package / "raises.py").write_text("import os\n\nraise RuntimeError('x')\n")
    (package / "bad_option.py").write_text(
        "from sidequest import Job\n\nclass FirstHourLimited(Job):\n"
        "    rate_limit = '10/m'\n\n    def perform(self):\n        pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "fhpkg" or m.startswith("fhpkg.")]:
        del sys.modules[name]


@pytest.mark.parametrize(("target", "kind"), [("fhpkg.jobs.FirstHourWelcome", "class"),
                                              ("fhpkg.jobs.helper", "function")])
def test_a_class_path_says_r_takes_its_module(project: Path, target: str, kind: str) -> None:
    # Before: "'fhpkg.jobs' is not a package. Run sidequest from your project's root".
    with pytest.raises(ConfigError) as caught:
        load_app((target,))
    assert str(caught.value) == (f"could not import {target!r}: -r takes a module, not a"
                                 f" {kind}: use -r fhpkg.jobs")


def test_a_missing_module_still_says_where_to_run_from(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"fhpkg\.nothere.*root directory"):
        load_app(("fhpkg.nothere",))


def test_a_slip_in_a_module_name_names_the_module_meant(project: Path) -> None:
    # Before: "Run sidequest from your project's root directory", from the root itself.
    with pytest.raises(ConfigError) as caught:
        load_app(("fhpkg.jbos",))
    assert str(caught.value) == (
        f"could not import 'fhpkg.jbos': package 'fhpkg' ({project / 'fhpkg'}) has no module"
        f" 'jbos'; did you mean fhpkg.jobs?")


def test_a_module_that_raises_shows_its_traceback_then_one_line(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: the RuntimeError went up raw (a traceback through importlib, exit 1).
    with pytest.raises(ConfigError) as caught:
        load_app(("fhpkg.raises",))
    assert str(caught.value) == ("could not load -r fhpkg.raises: RuntimeError: x (the"
                                 " traceback above is your module's)")
    shown = capsys.readouterr().err
    assert shown.startswith("Traceback (most recent call last):\n")
    assert 'raises.py", line 3, in <module>' in shown and shown.endswith("RuntimeError: x\n")
    assert "importlib" not in shown and "runner.py" not in shown  # the module's frames only


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """SIDEQUEST_ENV restored after the test, and the worker's log lines."""
    monkeypatch.delenv(environ.APP_ENV, raising=False)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("sidequest")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_e_replaces_an_inherited_sidequest_env_and_says_so(app_env: list[str]) -> None:
    os.environ[environ.APP_ENV] = "development"
    runner._export_environment(config_from_args(parser().parse_args(["-e", "production"])))
    assert os.environ[environ.APP_ENV] == "production"
    assert app_env == ["-e production replaces $SIDEQUEST_ENV=development from the environment"]


def test_the_files_environment_is_exported_only_when_unset(app_env: list[str],
                                                           tmp_path: Path) -> None:
    settings = tmp_path / "prod.toml"
    settings.write_text('environment = "production"\n')
    config = config_from_args(parser().parse_args(["-C", str(settings)]))
    os.environ[environ.APP_ENV] = "development"
    runner._export_environment(config)
    assert os.environ[environ.APP_ENV] == "development" and app_env == []
    del os.environ[environ.APP_ENV]
    runner._export_environment(config)
    assert os.environ[environ.APP_ENV] == "production"


def test_e_equal_to_the_inherited_value_says_nothing(app_env: list[str]) -> None:
    os.environ[environ.APP_ENV] = "production"
    runner._export_environment(config_from_args(parser().parse_args(["-e", "production"])))
    assert os.environ[environ.APP_ENV] == "production" and app_env == []


def test_a_memory_limit_below_the_workers_own_size_is_refused() -> None:
    from sidequest.worker.heartbeat import rss_kb

    used = rss_kb() // 1024
    if not used:
        pytest.skip("this OS does not report the resident memory")
    with pytest.raises(ConfigError) as caught:
        runner._check_memory_limit(1)
    message = str(caught.value)
    assert message.startswith("--max-memory 1 MB (max_memory) is below this worker's memory"
                              " right after loading the app, ")
    assert "e.g. --max-memory " in message
    suggested = int(message.rsplit("--max-memory ", 1)[1])
    assert suggested > used
    runner._check_memory_limit(suggested)  # what it suggests passes
    runner._check_memory_limit(None)


@pytest.mark.parametrize(("files", "found"), [
    ([], None),
    (["config/sidequest.toml"], "./config/sidequest.toml"),
    (["sidequest.toml", "config/sidequest.toml"], "./sidequest.toml"),
])
def test_the_default_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   files: list[str], found: str | None) -> None:
    monkeypatch.chdir(tmp_path)
    for name in files:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("concurrency = 2\n")
    assert config.default_file() == (found and found.replace("/", os.sep))


def test_watch_clears_the_screen_only_on_a_terminal_that_knows_how(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm-256color")
    assert monitor._frame_start(Terminal(), 0) == monitor.CLEAR
    assert monitor._frame_start(io.StringIO(), 0) == ""
    assert monitor._frame_start(io.StringIO(), 1) == "\n"
    for term in ("dumb", None):  # an editor's shell, a CI log: escape codes are noise there
        if term is None:
            monkeypatch.delenv("TERM")
        else:
            monkeypatch.setenv("TERM", term)
        assert monitor._frame_start(Terminal(), 1) == "\n"


def test_a_job_class_refused_at_import_keeps_its_own_message(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # A ConfigError is already the one line to show: not a traceback and a wrapper around it.
    with pytest.raises(ConfigError, match=r"^job class fhpkg\.bad_option\.FirstHourLimited:"
                                          r" unknown option 'rate_limit'"):
        load_app(("fhpkg.bad_option",))
    assert "Traceback" not in capsys.readouterr().err
