"""Job classes no worker could import by their name are refused at the first real push,
with the fix, instead of failing in the worker and retrying for weeks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from sidequest import Job, job, testing
from sidequest.errors import ConfigError

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]


def test_a_class_defined_in_a_function_is_refused(r: redis.Redis) -> None:
    class Inner(Job):
        def perform(self) -> None:
            pass

    with pytest.raises(ConfigError, match=r"defined inside a function.*top level"):
        Inner.perform_async()
    with pytest.raises(ConfigError, match="defined inside a function"):
        Inner.set(queue="x").perform_in(10)
    assert r.llen("queue:default") == 0 and r.zcard("schedule") == 0


def test_a_function_job_defined_in_a_function_is_refused(r: redis.Redis) -> None:
    @job()
    def inner() -> None:
        pass

    with pytest.raises(ConfigError, match="defined inside a function"):
        inner.perform_async()


def test_an_explicit_name_or_a_testing_mode_is_fine(r: redis.Redis) -> None:
    class Named(Job):
        name = "NamedInATest"

        def perform(self) -> None:
            pass

    class Local(Job):
        def perform(self) -> None:
            pass

    assert Named.perform_async()
    with testing.fake():
        Local.perform_async()
        assert len(Local.jobs) == 1
    testing.clear_all()


def test_a_class_in_main_is_refused(redis_url: str) -> None:
    script = ("from sidequest import Job\n"
              "class Main(Job):\n"
              "    def perform(self): pass\n"
              "Main.perform_async()\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(ROOT / "src")},
                          timeout=60, check=False)
    assert proc.returncode == 1
    assert "defined in the script being run (__main__)" in proc.stderr


def test_a_module_named_after_the_working_directory_is_refused(
    redis_url: str, tmp_path: Path,
) -> None:
    package = tmp_path / "shopapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(
        "from sidequest import Job\nclass Welcome(Job):\n    def perform(self): pass\n")
    script = "from jobs import Welcome\nWelcome.perform_async()\n"  # after `cd shopapp`
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=package, timeout=60, check=False,
                          env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": f".:{ROOT / 'src'}"})
    assert proc.returncode == 1
    assert "knows it as 'shopapp.jobs'" in proc.stderr, proc.stderr
