"""``sidequest stats`` / ``status``: what an operator sees in the terminal."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job
from sidequest.monitor import main

ROOT = Path(__file__).resolve().parents[2]
HOLD = threading.Event()


class MonJob(Job):
    queue = "mon"

    def perform(self) -> None:
        HOLD.wait(10)


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    assert main(command, list(args), out) == 0
    return out.getvalue()


def test_stats_shows_totals_and_queues(r: redis.Redis) -> None:
    r.set("stat:processed", 1234)
    MonJob.perform_bulk([[]] * 3)
    r.zadd("dead", {json.dumps({"class": "X", "args": []}): 1})
    text = run("stats")
    assert "Processed: 1,234" in text and "Dead: 1" in text and "Enqueued: 3" in text
    assert any(line.split() == ["mon", "3"] for line in text.splitlines())


def test_stats_counts_live_processes_as_status_does(r: redis.Redis) -> None:
    from sidequest import keys

    # A Sidequest process killed a moment ago: still listed, its lease gone.
    r.sadd("processes", "dead:1:aaaa")
    r.sadd(keys.SQ_PROCESSES, "dead:1:aaaa")
    r.hset("dead:1:aaaa", mapping={"info": json.dumps({"hostname": "dead"}), "busy": 3})
    r.sadd("processes", "ruby:2:bbbb")  # Ruby Sidekiq holds no lease
    r.hset("ruby:2:bbbb", mapping={"info": json.dumps({"hostname": "ruby"}), "busy": 1})
    assert "Busy: 1   Processes: 1" in run("stats")
    assert "Processes (1)" in run("status")


def test_status_shows_a_busy_process(r: redis.Redis) -> None:
    HOLD.clear()
    MonJob.perform_async()
    MonJob.perform_async()
    with running_worker(queues=(("mon", 0),), concurrency=1, prefetch=0, tag="mon-tag") as worker:
        wait_for(lambda: r.hget(worker.identity, "busy") == "1", what="busy")
        text = run("status")
        HOLD.set()
    (row,) = [ln for ln in text.splitlines() if ln.startswith(worker.identity)]
    assert "mon-tag" in row and "1/1" in row and "running" in row
    assert any(ln.split()[:2] == ["mon", "1"] for ln in text.splitlines())


def test_status_names_queues_with_jobs_that_no_running_process_serves(r: redis.Redis) -> None:
    HOLD.set()
    MonJob.set(queue="Emails").perform_async()  # a typo of the served queue's name
    MonJob.perform_async()
    with running_worker(queues=(("emails", 0),), concurrency=1) as worker:
        wait_for(lambda: r.hget(worker.identity, "info"), what="the first heartbeat")
        text = run("status")
    assert "No running process serves: Emails (1), mon (1)." in text
    assert "queue names are case-sensitive" in text


def test_status_with_jobs_waiting_and_no_worker_says_to_start_one(r: redis.Redis) -> None:
    # The first hour: jobs pushed, the worker forgotten; status listed them, and no more.
    assert "No Sidequest worker is running" not in run("status")  # nothing waits
    MonJob.perform_async()
    assert ("No Sidequest worker is running: jobs wait in their queues until one starts"
            " (sidequest -r yourapp.jobs -q <queue>)") in run("status")


def test_watch_redraws_until_interrupted(redis_url: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_url}
    # A suite started in the background (`make test &`, nohup) passes SIGINT on as ignored,
    # and Python then never raises KeyboardInterrupt: give the command Python's own Ctrl-C
    # handler, as a terminal would.
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
             " sys.argv = ['sidequest', 'status', '--watch', '0.5'];"
             " runpy.run_module('sidequest', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", start],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    frames, lines = 0, []
    deadline = time.monotonic() + 15
    while frames < 2 and time.monotonic() < deadline:
        lines.append(proc.stdout.readline())
        if lines[-1].startswith("Processes ("):  # each frame's first line
            frames += 1
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0 and frames == 2
    # Into a pipe, no escape codes: a terminal's clear-screen is noise in a file.
    assert not any("\033[" in line for line in lines)


def test_unreachable_redis_is_a_clear_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "sidequest", "stats", "--redis-url",
                           "redis://127.0.0.1:1/0"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 1 and "cannot read Redis at redis://127.0.0.1:1/0" in proc.stderr


def test_watch_into_a_pipe_that_closes_ends_quietly(redis_url: str) -> None:
    # `sidequest stats --watch | head -3`: the reader goes away after three lines.
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = subprocess.Popen([sys.executable, "-m", "sidequest", "stats", "--watch", "0.5"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(3):
        proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(15) == 0
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize(("command", "says"), [
    ("stats", "Totals"), ("status", "The worker processes"), ("periodic", "periodic entries")])
def test_each_command_s_help_says_what_it_shows(command: str, says: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(command, ["--help"])
    shown = capsys.readouterr().out
    assert says in shown and "``" not in shown


@pytest.mark.parametrize("seconds", ["-1", "0"])
def test_a_watch_interval_of_nothing_is_refused(seconds: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Before, it was taken (as half a second) without a word.
    assert main("stats", ["--watch", seconds], io.StringIO()) == 2
    assert ("sidequest stats: --watch takes the seconds between redraws, more than 0; got"
            f" {float(seconds):g}") in capsys.readouterr().err


def test_control_characters_in_names_are_written_out_not_sent_to_the_terminal(
        r: redis.Redis) -> None:
    # A queue name another program wrote: an escape sequence would clear lines and set the
    # window title on the operator's terminal, and a newline would forge a table row.
    name = "ansi\x1b[2K\x1b]0;pwned\x07\nFAKE 999\u202e"
    r.sadd("queues", name)
    r.lpush(f"queue:{name}", json.dumps({"class": "X", "args": [], "queue": name}))
    for command in ("stats", "status"):
        text = run(command)
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
        assert "ansi\\x1b[2K\\x1b]0;pwned\\x07\\nFAKE 999\\u202e" in text
        assert not any(line.startswith("FAKE") for line in text.splitlines())


def test_a_class_name_cannot_forge_a_worker_log_line() -> None:
    import logging

    from sidequest.worker.logs import TextFormatter

    record = logging.LogRecord("sidequest", logging.INFO, __file__, 1, "start", (), None)
    record.__dict__.update({"class": "Evil\x1b[31m\n2026-12-07T00:00:00.000Z pid=1 INFO: FAKE",
                            "jid": "j" * 24, "tid": "t1"})
    line = TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line
    assert "class=Evil\\x1b[31m\\n2026-12-07T00:00:00.000Z pid=1 INFO: FAKE jid=" in line


def test_a_class_name_in_a_messages_arguments_cannot_forge_a_line_either() -> None:
    import logging

    from sidequest.worker.logs import TextFormatter

    evil = "Evil\n2026-12-07T00:00:00.000Z pid=1 INFO: FAKE\x1b]0;pwned\x07"
    record = logging.LogRecord("sidequest", logging.WARNING, __file__, 1,
                               "cancelled: %s %s was not run", (evil, "j" * 24), None)
    line = TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line and "\x07" not in line
    assert "cancelled: Evil\\n2026" in line and line.endswith(f"{'j' * 24} was not run")


def test_a_password_on_the_command_line_is_warned_of(redis_url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # --watch keeps it in ps for hours; the worker warned of it, stats and status did not.
    url = redis_url.replace("redis://", "redis://:not-needed@")
    main("stats", ["--redis-url", url], io.StringIO())
    assert "the Redis password in --redis-url can be read by every user" in capsys.readouterr().err
    main("stats", ["--redis-url", redis_url], io.StringIO())
    assert "password" not in capsys.readouterr().err
