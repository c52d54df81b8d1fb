"""A newcomer's first hour with the ``sidequest`` command, run as they run it, against the
test Redis: -e over SIDEQUEST_ENV, the start line naming its Redis, --max-memory below the
worker's own size, -r naming a module without jobs or one that raises (with and without -P),
./sidequest.toml read without -C, and ``stats --watch`` into a pipe."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helpers import FAST, Output, kill_leftovers, wait_for

ROOT = Path(__file__).resolve().parents[2]
STARTED: list[subprocess.Popen[str]] = []

JOBS = ("import os\nfrom sidequest import Job\n\n"
        "print('SIDEQUEST_ENV=%s at import' % os.environ.get('SIDEQUEST_ENV'), flush=True)\n\n"
        "class FirstHourJob(Job):\n    def perform(self):\n        pass\n")


@pytest.fixture(autouse=True)
def _no_leftover_workers() -> Iterator[None]:
    yield
    kill_leftovers(STARTED)


@pytest.fixture
def project(tmp_path: Path, redis_url: str) -> Path:
    """A project root: ``fh_jobs`` (one job), ``fh_empty`` (none), ``fh_raises`` (raises),
    and fast.toml, the test timers."""
    (tmp_path / "fh_jobs.py").write_text(JOBS)
    (tmp_path / "fh_empty.py").write_text("")
    (tmp_path / "fh_raises.py").write_text("import os\n\nraise RuntimeError('x')\n")
    (tmp_path / "fast.toml").write_text(_fast())
    return tmp_path


def _fast() -> str:
    return "".join(f"{key} = {value}\n" for key, value in FAST.items())


def sidequest(project: Path, *args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[str]:
    path = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH", ""))
                           if p)
    full_env = {**os.environ, "PYTHONPATH": path}
    for name in ("SIDEQUEST_ENV", "SIDEQUEST_REDIS_URL"):  # the test's own, if any
        full_env.pop(name, None)
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "sidequest", *args], env=full_env,
                            cwd=cwd or project, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    STARTED.append(proc)
    return proc



def started(proc: subprocess.Popen[str], *waits: str) -> Output:
    """Wait for the start line and each of ``waits``, then stop the worker gracefully."""
    out = Output(proc)
    for text in ("started: ", *waits):
        out.wait_for(text)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    return out


def test_e_wins_over_an_inherited_sidequest_env(project: Path, redis_url: str) -> None:
    # Before: the shell's development stayed, and nothing said -e was ignored.
    proc = sidequest(project, "-r", "fh_jobs", "-C", "fast.toml", "-e", "production",
                     env={"REDIS_URL": redis_url, "SIDEQUEST_ENV": "development"})
    out = started(proc, "at import", "replaces")
    assert "SIDEQUEST_ENV=production at import" in out.lines
    assert any("INFO: -e production replaces $SIDEQUEST_ENV=development from the environment"
               in line for line in out.lines)


def test_the_files_environment_leaves_an_inherited_sidequest_env(project: Path,
                                                                 redis_url: str) -> None:
    (project / "prod.toml").write_text(_fast() + 'environment = "production"\n')
    proc = sidequest(project, "-r", "fh_jobs", "-C", "prod.toml",
                     env={"REDIS_URL": redis_url, "SIDEQUEST_ENV": "development"})
    out = started(proc, "at import")
    assert "SIDEQUEST_ENV=development at import" in out.lines
    assert not any("replaces" in line for line in out.lines)


def test_the_start_line_names_the_redis_without_its_password(project: Path, redis_url: str,
                                                             r: redis.Redis) -> None:
    # An app pushing to db 0 and a worker on db 3 was silent; "1 threads" read oddly.
    r.acl_setuser("firsthour", enabled=True, passwords=["+sekret-pw"], commands=["+@all"],
                  keys=["*"], channels=["*"])
    try:
        url = redis_url.replace("redis://", "redis://firsthour:sekret-pw@").rsplit("/", 1)[0]
        proc = sidequest(project, "-r", "fh_jobs", "-C", "fast.toml", "-c", "1",
                         "--redis-url", f"{url}/3")
        out = started(proc)
    finally:
        r.acl_deluser("firsthour")
    (banner,) = [line for line in out.lines if "started: " in line]
    shown = url.replace("sekret-pw", "***")
    assert banner.endswith(f"started: strict, 1 thread, 100 async jobs at once, queues default,"
                           f" Redis {shown}/3")
    assert not any("sekret-pw" in line for line in out.lines)


@pytest.mark.parametrize("processes", [[], ["-P", "2"]])
def test_a_max_memory_below_the_workers_own_size_is_refused_at_start(
    project: Path, redis_url: str, processes: list[str],
) -> None:
    # Before: each process exited right after start, and -P restarted them for good.
    proc = sidequest(project, "-r", "fh_jobs", "-C", "fast.toml", "-c", "1", *processes,
                     "--max-memory", "1", env={"REDIS_URL": redis_url})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert ("sidequest: --max-memory 1 MB (max_memory) is below this worker's memory right"
            " after loading the app, ") in out
    assert "e.g. --max-memory " in out and "started" not in out and "Traceback" not in out


def test_the_over_limit_warning_is_logged_once_per_process(redis_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Every processor thread checks the memory after its job: before, threads finishing
    together each logged the warning."""
    from sidequest.config import build
    from sidequest.worker import launcher as launcher_module

    threads = 5
    together = threading.Barrier(threads)

    def rss_kb() -> int:  # each thread reads the memory at the same moment
        together.wait(10)
        return 200 * 1024

    monkeypatch.setattr(launcher_module, "rss_kb", rss_kb)
    worker = launcher_module.Launcher(build(**{**FAST, "max_memory": 100}))
    with warnings_of(launcher_module.log) as said:
        checks = [threading.Thread(target=worker._check_memory) for _ in range(threads)]
        for check in checks:
            check.start()
        for check in checks:
            check.join(10)
    assert worker.retired and worker.stop_requested.is_set()
    assert [line for line in said if "over max_memory" in line] == [
        "memory 200 MB is over max_memory 100 MB: finishing the running jobs and exiting for"
        " the supervisor to start a fresh process"]


@contextlib.contextmanager
def warnings_of(logger: logging.Logger) -> Iterator[list[str]]:
    """The messages ``logger`` logs at WARNING and above meanwhile."""
    said: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)


def test_r_naming_a_module_without_jobs_warns(project: Path, redis_url: str) -> None:
    proc = sidequest(project, "-r", "fh_empty", "-C", "fast.toml", env={"REDIS_URL": redis_url})
    out = started(proc, "no job classes are loaded")
    assert any("WARNING: no job classes are loaded: no Job class or @job function is defined"
               " in -r fh_empty" in line for line in out.lines)


def test_r_naming_a_module_with_jobs_does_not_warn(project: Path, redis_url: str) -> None:
    proc = sidequest(project, "-r", "fh_jobs", "-C", "fast.toml", env={"REDIS_URL": redis_url})
    out = started(proc)
    assert not any("no job classes" in line for line in out.lines)


def test_a_worker_started_inside_its_package_exits_2(project: Path, redis_url: str) -> None:
    # It would fail every job the application pushes (shop.jobs.X, not jobs.X) and rewrite
    # the periodic entries under the short names.
    package = project / "fhshop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(JOBS)
    proc = sidequest(project, "-r", "jobs", env={"REDIS_URL": redis_url}, cwd=package)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert f"Run the worker from {str(project)!r} instead: sidequest -r fhshop.jobs" in out
    assert "Traceback" not in out


def test_a_worker_with_nothing_to_load_exits_2(project: Path, redis_url: str,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    # Started from a directory without the project's sidequest.toml, it took jobs from its
    # queues and failed every one of them.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    proc = sidequest(project, "-q", "mail", env={"REDIS_URL": redis_url}, cwd=elsewhere)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert "no -r given and no settings file names your jobs" in out
    assert (f"from mail: pass -r yourapp.jobs, from your project's root (the current directory"
            f" is {elsewhere})") in out, out


def test_a_worker_pushing_only_a_settings_files_periodic_entries_starts(
        project: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    # For a Ruby app's jobs, say: no job class is needed to push them.
    elsewhere = tmp_path_factory.mktemp("pusher")
    (elsewhere / "sidequest.toml").write_text(
        (project / "fast.toml").read_text()
        + '\n[[periodic]]\nname = "ruby-report"\nclass = "ReportJob"\nevery = 60\n')
    # Serving the queue its entries push to, it would fail their jobs: refused.
    refused = sidequest(project, env={"REDIS_URL": redis_url}, cwd=elsewhere)
    said, _ = refused.communicate(timeout=30)
    assert refused.returncode == 2, said
    assert "would take the jobs its settings file's periodic entries push to default" in said
    proc = sidequest(project, "-q", "periodic-only", env={"REDIS_URL": redis_url},
                     cwd=elsewhere)
    out = started(proc, "no -r given: no job classes are loaded")
    assert "(-q periodic-only)" in out.wait_for("no -r given")


@pytest.mark.parametrize("processes", [[], ["-P", "2"]])
def test_a_module_that_raises_shows_its_traceback_and_exits_2(
    project: Path, redis_url: str, processes: list[str],
) -> None:
    # Before: a raw traceback through importlib and exit 1, which README calls a crash.
    proc = sidequest(project, "-r", "fh_raises", *processes, env={"REDIS_URL": redis_url})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    lines = out.rstrip("\n").splitlines()
    assert lines[-1] == ("sidequest: could not load -r fh_raises: RuntimeError: x (the"
                         " traceback above is your module's)")
    assert lines[-2] == "RuntimeError: x" and "Traceback (most recent call last):" in lines
    assert 'fh_raises.py", line 3, in <module>' in out and "importlib" not in out


@pytest.mark.parametrize("processes", [[], ["-P", "2"]])
def test_a_failing_startup_hook_stops_the_worker_with_exit_2(
    project: Path, redis_url: str, processes: list[str],
) -> None:
    (project / "fh_hooked.py").write_text(
        JOBS + "\nimport sidequest\n\n@sidequest.on_startup\ndef connect():\n"
               "    raise ConnectionRefusedError('the mail server is down')\n")
    proc = sidequest(project, "-r", "fh_hooked", "-C", "fast.toml", *processes,
                     env={"REDIS_URL": redis_url})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert ("the on_startup hook fh_hooked.connect raised ConnectionRefusedError: the mail"
            " server is down; the worker did not start") in out, out
    assert "Traceback (most recent call last):" in out and "started: " not in out


HOOKED = """
import asyncio, os, time, redis
import sidequest
from sidequest import Job

marks = redis.Redis.from_url(os.environ["REDIS_URL"])

class Long(Job):
    def perform(self):
        marks.rpush("marks", "job started")
        time.sleep(30)

@sidequest.on_startup
async def connect():
    marks.rpush("marks", "startup")
    if os.path.exists("slow-start"):
        await asyncio.sleep(30)
    if os.path.exists("fail-start"):
        raise ConnectionRefusedError("the mail server is down")

@sidequest.on_shutdown
async def close():
    # Past the jobs' timeout: the stop grants the hooks their share (with -P, past the
    # supervisor's own wait for its children, before it knew of the hooks).
    await asyncio.sleep(6 if os.path.exists("slow-close") else 2)
    marks.rpush("marks", "shutdown")
"""


def test_shutdown_hooks_run_after_a_job_kept_to_the_deadline(project: Path, redis_url: str,
                                                             r: redis.Redis) -> None:
    (project / "fh_life.py").write_text(HOOKED)
    proc = sidequest(project, "-r", "fh_life", "-t", "1", env={"REDIS_URL": redis_url})
    Output(proc).wait_for("started: ")
    subprocess.run([sys.executable, "-c", "from fh_life import Long; Long.perform_async()"],
                   cwd=project, env={**os.environ, "REDIS_URL": redis_url,
                                     "PYTHONPATH": str(project)}, check=True, timeout=30)
    wait_for(lambda: "job started" in r.lrange("marks", 0, -1), what="the long job")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0  # not killed (-9) by the hard deadline while the hook ran
    assert r.lrange("marks", 0, -1) == ["startup", "job started", "shutdown"]
    assert r.scard("processes") == 0, "the process cleared its record after the hooks"


def test_a_p_supervisor_waits_for_its_childrens_shutdown_hooks(
        project: Path, redis_url: str, r: redis.Redis) -> None:
    (project / "fh_life.py").write_text(HOOKED)
    (project / "slow-close").write_text("")
    proc = sidequest(project, "-r", "fh_life", "-P", "2", "-t", "1",
                     env={"REDIS_URL": redis_url})
    out = Output(proc)
    wait_for(lambda: sum("started: " in line for line in out.lines) == 2, what="two children")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, out.lines[-5:]
    assert r.lrange("marks", 0, -1).count("shutdown") == 2
    assert r.scard("processes") == 0


def test_a_stop_while_a_startup_hook_runs_starts_nothing(project: Path, redis_url: str,
                                                        r: redis.Redis) -> None:
    (project / "fh_life.py").write_text(HOOKED)
    (project / "slow-start").write_text("")
    proc = sidequest(project, "-r", "fh_life", "-t", "1", env={"REDIS_URL": redis_url})
    wait_for(lambda: r.lrange("marks", 0, -1) == ["startup"], what="the startup hook")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "stopped while its on_startup hooks ran; nothing was fetched" in out, out
    assert r.lrange("marks", 0, -1) == ["startup", "shutdown"]


def test_a_replacement_whose_startup_hook_fails_is_restarted_not_the_pool_stopped(
        project: Path, redis_url: str, r: redis.Redis) -> None:
    # A service down for a moment when -P replaces a child: the healthy sibling stays.
    (project / "fh_life.py").write_text(HOOKED)
    proc = sidequest(project, "-r", "fh_life", "-P", "2", "-C", "fast.toml",
                     env={"REDIS_URL": redis_url})
    out = Output(proc)

    def starts() -> int:
        return sum("started: " in line for line in out.lines)

    wait_for(lambda: starts() == 2, what="two worker processes")
    (project / "fail-start").write_text("")
    victim = int(json.loads(r.hget(sorted(r.smembers("processes"))[0], "info"))["pid"])
    os.kill(victim, signal.SIGKILL)
    out.wait_for("the mail server is down")
    out.wait_for("starting another in")  # a crash to retry, with the usual growing wait
    (project / "fail-start").unlink()
    wait_for(lambda: starts() == 3, timeout=30, what="the replacement to start")
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


@pytest.mark.parametrize("where", ["sidequest.toml", "config/sidequest.toml"])
def test_a_settings_file_in_the_working_directory_is_read_without_c(
    project: Path, redis_url: str, where: str,
) -> None:
    # Sidekiq reads config/sidekiq.yml unasked; before, this file was ignored.
    (project / where).parent.mkdir(exist_ok=True)
    (project / where).write_text(_fast() + 'require = ["fh_jobs"]\nconcurrency = 2\n'
                                 f'redis_url = "{redis_url}"\n')
    proc = sidequest(project, env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    out = started(proc, "settings from")
    assert any(f"INFO: settings from ./{where}" in line for line in out.lines)
    assert any("started: strict, 2 threads" in line for line in out.lines)
    # `sidequest stats` from there reads the same Redis as the worker.
    stats = sidequest(project, "stats", env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    text, _ = stats.communicate(timeout=30)
    assert stats.returncode == 0 and "Processed:" in text, text


def test_c_wins_over_the_default_settings_file(project: Path, redis_url: str) -> None:
    (project / "sidequest.toml").write_text("concurrency = 2\n")
    proc = sidequest(project, "-r", "fh_jobs", "-C", "fast.toml",
                     env={"REDIS_URL": redis_url})
    out = started(proc)
    assert not any("settings from" in line for line in out.lines)
    assert any("started: strict, 5 threads" in line for line in out.lines)


def test_stats_watch_into_a_pipe_writes_no_escape_codes(project: Path, redis_url: str) -> None:
    proc = sidequest(project, "stats", "--watch", "0.5", env={"REDIS_URL": redis_url})
    out = Output(proc)
    wait_for(lambda: sum("Processed:" in line for line in out.lines) >= 2, 15, "two frames")
    proc.terminate()  # not INT: a suite started in the background passes it on as ignored
    proc.wait(10)
    assert not any("\033[" in line for line in out.lines), out.lines


@pytest.mark.parametrize("command", [["-r", "fh_jobs"], ["stats"]])
def test_a_database_that_is_not_a_number_is_refused(project: Path, redis_url: str,
                                                    command: list[str]) -> None:
    # Before: redis-py read /abc as database 0, without a word.
    proc = sidequest(project, *command, env={"REDIS_URL": redis_url.rsplit("/", 1)[0] + "/abc"})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert "the database must be a number, got 'abc'" in out and "Traceback" not in out


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0
                    or not Path("/usr/bin/unshare").exists(),
                    reason="a PID namespace needs root and unshare")
def test_a_lone_worker_as_pid_1_says_to_run_under_an_init(project: Path,
                                                           redis_url: str) -> None:
    # As a container's first process it never reaped its jobs' orphans: they piled up.
    env = {**os.environ, "REDIS_URL": redis_url,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(["/usr/bin/unshare", "--pid", "--fork", "--kill-child",
                             sys.executable, "-m", "sidequest", "-r", "fh_jobs", "-C",
                             "fast.toml", "-c", "1"], env=env, cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    STARTED.append(proc)
    out = Output(proc)
    line = out.wait_for("running as PID 1")
    assert "pid=1 WARNING" in line and "(docker run --init, tini) or with -P 2" in line, line
    out.wait_for("started: ")
