"""``sidequest dev`` and the README's examples, run the way a user runs them.

The README's code is not copied here: the tests read each fenced block that follows a
``<!-- marker -->`` comment in README.md, so the page and the tests cannot drift apart.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from helpers import wait_for
from redis_server import RedisServer
from sidequest.config import build

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PRIVATE_URL = re.compile(r"Redis: (redis://127\.0\.0\.1:(\d+)/0) \(private")


def readme_block(marker: str) -> str:
    """The fenced code block right after ``<!-- marker -->`` in README.md."""
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```\w*\n(.*?)^```", README.read_text(),
                      re.DOTALL | re.MULTILINE)
    assert found, f"README.md has no fenced block after <!-- {marker} -->"
    return found.group(1)


def user_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any Redis setting, unbuffered so lines arrive at once."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SIDEQUEST_REDIS_URL")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


class Output:
    """A process's stdout+stderr lines, read in a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, match: Callable[[str], object], what: str, timeout: float = 20) -> str:
        """The first line for which ``match`` is true, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                line = next((ln for ln in self.lines if match(ln)), None)
                if line is not None:
                    return line
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {what} within {timeout}s; output:\n" + self.text())
                self._cond.wait(left)

    def text(self) -> str:
        return "\n".join(self.lines[-40:])

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)


def start(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], Output]:
    proc = subprocess.Popen([sys.executable, "-m", "sidequest", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, Output(proc)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started; any still running at the end are stopped, then killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_and_check(proc: subprocess.Popen[str], out: Output, signum: int) -> None:
    proc.send_signal(signum)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("did not exit within 30s of the signal; output:\n" + out.text())
    out.join()
    assert code == 0, out.text()
    assert not any("Traceback" in line for line in out.lines), out.text()


# -- sidequest dev -------------------------------------------------------------------------


@pytest.fixture
def port_6379() -> Iterator[None]:
    """Port 6379, Redis's default, free for this test. ``sidequest dev`` uses a Redis that
    answers there, and one test starts one there; `make test` runs the suites of several
    Python versions side by side, so these tests take turns through a lock file. Something
    else listening there skips the test."""
    with open(Path(tempfile.gettempdir()) / "sidequest-tests-port-6379.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if accepts_connections(6379):
            pytest.skip("something else listens on 6379, which this test needs free")
        yield


def test_dev_runs_the_example_app_on_a_private_redis(
    port_6379: None, redis_server: RedisServer, procs: list[subprocess.Popen[str]],
    tmp_path: Path
) -> None:
    # redis_server: only so that this skips (or fails in CI) like the suite without redis-server.
    proc, out = start(["dev"], ROOT, user_env(TMPDIR=str(tmp_path)))
    procs.append(proc)
    found = PRIVATE_URL.search(out.wait_for(PRIVATE_URL.search, "private Redis URL"))
    assert found is not None
    port = int(found.group(2))
    assert port != 6379
    out.wait_for(lambda ln: "Ctrl-C" in ln, "'Press Ctrl-C' line")
    out.wait_for(lambda ln: "examples.shop.jobs" in ln and "queues" in ln, "worker line")
    out.wait_for(lambda ln: ln.startswith("traffic: enqueued"), "demo traffic line")
    out.wait_for(lambda ln: ln.startswith("shop: "), "line printed by an example job")
    assert accepts_connections(port)
    # Its directory is gone while it runs: a forced stop (a third Ctrl-C) leaves none.
    assert list(tmp_path.glob("sidequest-dev-*")) == []

    stop_and_check(proc, out, signal.SIGINT)
    assert not accepts_connections(port), "the private redis-server is still running"


def test_dev_with_your_app_and_no_demo_traffic(
    port_6379: None, redis_server: RedisServer, procs: list[subprocess.Popen[str]],
    tmp_path: Path
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")  # the README's layout: a package
    (tmp_path / "app" / "jobs.py").write_text(readme_block("quickstart:jobs"))
    proc, out = start(["dev", "-r", "app.jobs", "--no-demo-traffic", "-P", "2"], tmp_path,
                      user_env())
    procs.append(proc)
    found = PRIVATE_URL.search(out.wait_for(PRIVATE_URL.search, "private Redis URL"))
    assert found is not None
    # The app's shell is told exactly how to reach the same Redis.
    out.wait_for(lambda ln: ln.strip() == f"export REDIS_URL={found.group(1)}", "export line")
    out.wait_for(lambda ln: "Ctrl-C" in ln, "'Press Ctrl-C' line")
    enqueue = readme_block("quickstart:enqueue")
    subprocess.run([sys.executable, "-c", enqueue], cwd=tmp_path, check=True, timeout=30,
                   env=user_env(REDIS_URL=found.group(1)))
    out.wait_for(lambda ln: "Sending the welcome email to user 42" in ln, "the job's line")
    with redis.Redis.from_url(found.group(1)) as client:  # -P is obeyed, as by `sidequest`
        wait_for(lambda: client.scard("processes") == 2, timeout=30, what="2 processes")

    stop_and_check(proc, out, signal.SIGTERM)
    assert not any(line.startswith("traffic:") for line in out.lines), out.text()
    assert not accepts_connections(int(found.group(2)))


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_dev_without_redis_server_says_how_to_install_it(port_6379: None,
                                                         tmp_path: Path) -> None:
    result = run(["-m", "sidequest", "dev"], ROOT, user_env(PATH=str(tmp_path)))
    assert result.returncode == 2
    assert "sudo apt-get install redis-server" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_dev_outside_a_checkout_asks_for_your_app(tmp_path: Path) -> None:
    result = run(["-m", "sidequest", "dev"], tmp_path, user_env())
    assert result.returncode == 2
    assert "-r yourapp.jobs" in result.stderr


# -- README.md -----------------------------------------------------------------------------


@pytest.mark.parametrize("file_form", [False, True], ids=["module", "file"])
def test_readme_quick_start_works_as_written(
    redis_url: str, r: redis.Redis, procs: list[subprocess.Popen[str]], tmp_path: Path,
    file_form: bool,
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")  # the README's layout: a package
    (tmp_path / "app" / "jobs.py").write_text(readme_block("quickstart:jobs"))
    env = user_env(REDIS_URL=redis_url)

    subprocess.run([sys.executable, "-c", readme_block("quickstart:enqueue")], cwd=tmp_path,
                   env=env, check=True, timeout=30)
    assert r.llen("queue:default") == 2

    command = shlex.split(readme_block("quickstart:run"))
    assert command[0] == "sidequest"
    if file_form:  # `-r app/jobs.py` must find the jobs the app enqueued as app.jobs.*
        command = [("app/jobs.py" if word == "app.jobs" else word) for word in command]
        assert "app/jobs.py" in command
    proc, out = start(command[1:], tmp_path, env)
    procs.append(proc)
    out.wait_for(lambda ln: "Sending the welcome email to user 42" in ln, "SendWelcome's line")
    out.wait_for(lambda ln: "Clearing the cache for home" in ln, "clear_cache's line")
    assert r.llen("queue:default") == 0

    stop_and_check(proc, out, signal.SIGTERM)


def test_readme_testing_example_passes(tmp_path: Path) -> None:
    # Laid out as the README says: tests/test_jobs.py beside app/, pythonpath = ["."].
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")  # the README's layout: a package
    (tmp_path / "app" / "jobs.py").write_text(readme_block("quickstart:jobs"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_jobs.py").write_text(readme_block("readme:testing"))
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    result = run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path, user_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_readme_config_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "sidequest.toml"
    path.write_text(readme_block("readme:config"))
    config = build(str(path))
    assert config.require == ("app.jobs",)
    assert config.queues == (("critical", 3), ("default", 2), ("low", 1))


def test_dev_print_env_gives_the_export_line(redis_url: str, tmp_path: Path) -> None:
    # In the app's own directory (no example app there), and without -r: it is about Redis.
    result = run(["-m", "sidequest", "dev", "--print-env"], tmp_path,
                 user_env(REDIS_URL=redis_url))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"export REDIS_URL={redis_url}"


def test_dev_uses_a_redis_already_on_the_default_port(
    port_6379: None, redis_server: RedisServer, procs: list[subprocess.Popen[str]],
    tmp_path: Path
) -> None:
    default = RedisServer(redis_server.executable, tmp_path)
    default.port = 6379
    default.start()
    try:
        result = run(["-m", "sidequest", "dev", "--print-env"], tmp_path, user_env())
        assert result.stdout.strip() == "export REDIS_URL=redis://localhost:6379/0"
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / "jobs.py").write_text(readme_block("quickstart:jobs"))
        proc, out = start(["dev", "-r", "app.jobs", "--no-web"], tmp_path, user_env())
        procs.append(proc)
        out.wait_for(lambda ln: "already running on 127.0.0.1:6379" in ln, "the Redis line")
        out.wait_for(lambda ln: "Ctrl-C" in ln, "'Press Ctrl-C' line")
        # The app, with no setting at all, pushes where the worker listens.
        subprocess.run([sys.executable, "-c", readme_block("quickstart:enqueue")],
                       cwd=tmp_path, check=True, timeout=30, env=user_env())
        out.wait_for(lambda ln: "Sending the welcome email to user 42" in ln, "the job's line")
        stop_and_check(proc, out, signal.SIGTERM)
        # The example shop's demo data stays out of that Redis: it gets a private one.
        default.client().flushall()
        proc, out = start(["dev", "--no-web"], ROOT, user_env())
        procs.append(proc)
        out.wait_for(PRIVATE_URL.search, "private Redis URL")
        out.wait_for(lambda ln: ln.startswith("shop: "), "line printed by an example job")
        stop_and_check(proc, out, signal.SIGTERM)
        left = sorted(default.client().scan_iter())
        # Named when it fails: a worker of another suite's test waiting for Redis on 6379
        # (make test runs several side by side) registers the moment this one answers.
        assert left == [], f"something wrote to the Redis on 6379: {left}"
    finally:
        default.stop()
