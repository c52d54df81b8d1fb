"""The reader of a worker's output goes away (a log shipper that died, a `| head`): its log
lines and its jobs' printed output are lost, and nothing else. Raised to the thread that
logged, the broken pipe ended a processor thread at its job's failure line, and the worker
went on heartbeating with nothing to run its jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from helpers import FAST, wait_for
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_whose_output_pipe_broke_goes_on_running_jobs(
        redis_server: RedisServer, redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    config = tmp_path / "fast.toml"
    config.write_text("\n".join(f"{k} = {v}" for k, v in FAST.items()) + "\n")
    errors = tmp_path / "stderr.txt"
    env = {**os.environ, "REDIS_URL": redis_url,
           "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
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
