"""A worker in the odd states deployments leave it in: its output's reader gone (a log
shipper that died, a `| head`), its output closed at the start (`>&-`), an ASCII-only locale,
no file descriptor left. Its log lines and its jobs' printed output are lost or escaped, and
nothing else: no job fails, none is run again, and the stop is clean."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helpers import FAST, Output, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _setup(redis_url: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "fast.toml"
    config.write_text("\n".join(f"{k} = {v}" for k, v in FAST.items()) + "\n")
    env = {**os.environ, "REDIS_URL": redis_url,
           "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return config, env


@contextlib.contextmanager
def _logging_worker(command: list[str], env: dict[str, str],
                    encoding: str | None = None) -> Iterator[Output]:
    """``command`` (a worker) with its output read line by line; yields once it has started,
    and kills it at the end if the test did not stop it."""
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding=encoding)
    try:
        out = Output(proc)
        out.wait_for(" started: ")
        yield out
        proc.send_signal(signal.SIGTERM)
        out.code = proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _worker(config: Path, *flags: str) -> list[str]:
    return [sys.executable, *flags, "-m", "sidequest", "-r", "apps.output_jobs", "-c", "2",
            "-C", str(config)]


def test_a_worker_whose_output_pipe_broke_goes_on_running_jobs(
        redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """Raised to the thread that logged, the broken pipe ended a processor thread at its
    job's failure line, and the worker went on heartbeating with nothing to run its jobs."""
    config, env = _setup(redis_url, tmp_path)
    errors = tmp_path / "stderr.txt"
    with open(errors, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidequest", "-r", "apps.output_jobs", "-c", "2",
             "-C", str(config)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err)
    try:
        assert proc.stdout is not None
        assert b"started" in proc.stdout.readline()
        proc.stdout.close()  # the reader is gone: the worker's next write breaks the pipe
        from apps.output_jobs import Chatty, Divide

        for round_ in (1, 2):  # the second: the processor threads outlived the first
            Divide.perform_bulk([[i] for i in range(20)])
            wait_for(lambda n=round_: int(r.get("stat:failed") or 0) == 20 * n
                     and not r.llen("queue:default"),
                     what=f"round {round_}'s 20 failing jobs run, with every line lost")
        # A job that prints does not fail for output nobody reads (run again, its work
        # would be done twice).
        Chatty.perform_bulk([[i] for i in range(5)])
        wait_for(lambda: int(r.get("stat:processed") or 0) == 45, what="the printing jobs")
        assert int(r.get("stat:failed") or 0) == 40 and not r.zcard("retry")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    said = errors.read_text()
    assert said.count("cannot write its output (BrokenPipeError") == 1, said  # not per line
    assert "Traceback" not in said, said


def test_a_worker_started_with_its_output_closed_runs_printing_jobs(
        redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """`>&-`: Python's sys.stdout is None, and each job's print raised (the job failed, to
    be run again with its work done twice); the stop ended with exit code 120."""
    config, env = _setup(redis_url, tmp_path)
    command = [sys.executable, "-m", "sidequest", "-r", "apps.output_jobs", "-c", "2",
               "-C", str(config)]
    proc = subprocess.Popen(["sh", "-c", 'exec "$@" >&-', "sh", *command], env=env, cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: r.smembers("processes"), what="the worker registered")
        from apps.output_jobs import Chatty, SpawnsEcho

        Chatty.perform_bulk([[i] for i in range(5)])
        SpawnsEcho.perform_async()  # its command inherits a standard output that works
        wait_for(lambda: int(r.get("stat:processed") or 0) == 6, what="the printing jobs")
        proc.send_signal(signal.SIGTERM)
        _, said = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not int(r.get("stat:failed") or 0) and not r.zcard("retry"), said
    assert proc.returncode == 0, said


@pytest.mark.parametrize("encoding", ["ascii", None])  # None: the C locale's own
def test_an_ascii_only_output_escapes_what_it_cannot_encode(
        redis_url: str, r: redis.Redis, tmp_path: Path, encoding: str | None) -> None:
    """Its log dropped each batch of lines with one such character, and a job that printed
    one failed."""
    config, env = _setup(redis_url, tmp_path)
    env.update(PYTHONUTF8="0", LC_ALL="C")
    env.pop("PYTHONIOENCODING", None)
    if encoding is not None:
        env["PYTHONIOENCODING"] = encoding
    with _logging_worker(_worker(config), env, encoding="ascii") as out:
        from apps.output_jobs import Accented

        Accented.perform_async(False)
        Accented.perform_async(True)
        out.wait_for("\\xe9chec \\U0001f680")  # the failure's line, escaped
        wait_for(lambda: int(r.get("stat:processed") or 0) == 2, what="both jobs")
    assert out.code == 0
    assert int(r.get("stat:failed") or 0) == 1  # the one that raised, not the one that printed
    assert sum("printed: caf\\xe9 \\U0001f680" in line for line in out.lines) == 2


def test_stats_in_an_ascii_only_locale_escape_a_queue_name(redis_url: str,
                                                           r: redis.Redis) -> None:
    r.sadd("queues", "émoji🚀")  # written by another program (Ruby allows it)
    r.lpush("queue:émoji🚀", '{"class":"X","args":[],"jid":"1","queue":"émoji🚀"}')
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONIOENCODING": "ascii",
           "PYTHONUTF8": "0", "LC_ALL": "C"}
    for command in ("stats", "status"):
        done = subprocess.run([sys.executable, "-m", "sidequest", command], env=env,
                              capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr.decode()
        assert b"\\xe9moji" in done.stdout, done.stdout.decode()


def test_a_stop_after_a_job_took_every_file_descriptor_puts_it_back(
        redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """The stop read a script it had not needed before from its file, could not open it,
    and ended in a traceback with the job left for a reaper (counted as a death)."""
    config, env = _setup(redis_url, tmp_path)
    command = ["sh", "-c", 'ulimit -n 64 && exec "$@"', "sh", *_worker(config),
               "-t", "1"]
    with _logging_worker(command, env) as out:
        from apps.output_jobs import HoardFiles

        jid = HoardFiles.perform_async(30)
        wait_for(lambda: any(r.hlen(f"{name}:work") for name in r.smembers("processes")),
                 what="the job running")
    assert out.code == 0, "\n".join(out.lines[-20:])
    assert jid in r.lrange("queue:default", 0, -1)[0], out.lines[-5:]  # pushed back


def test_under_dev_mode_and_warnings_as_errors_a_start_and_stop_warn_of_nothing(
        redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """The watchdog's process object, dropped at once, warned at every start (a traceback
    under -W error, which reads as a crash), and would again at the exit it outlives."""
    config, env = _setup(redis_url, tmp_path)
    env["PYTHONWARNINGS"] = "error"
    with _logging_worker(_worker(config, "-X", "dev"), env) as out:
        from apps.output_jobs import Chatty

        Chatty.perform_async(1)
        wait_for(lambda: int(r.get("stat:processed") or 0) == 1, what="a job")
    assert out.code == 0
    text = "\n".join(out.lines)
    assert "Warning" not in text and "Exception ignored" not in text, text
