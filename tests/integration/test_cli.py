"""The ``sidequest`` command as users run it: flags, errors, logs, signals, shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from helpers import FAST, Output, kill_leftovers, wait_for
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]


STARTED: list[subprocess.Popen[str]] = []


def sidequest(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[str]:
    extra = (env or {}).get("PYTHONPATH", "")
    path = os.pathsep.join(p for p in (extra, str(ROOT / "tests"),
                                       os.environ.get("PYTHONPATH", "")) if p)
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": path}
    proc = subprocess.Popen([sys.executable, "-m", "sidequest", *args], env=full_env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    STARTED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _no_leftover_workers() -> Iterator[None]:
    yield
    kill_leftovers(STARTED)


def run(*args: str) -> tuple[int, str]:
    proc = sidequest(*args)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out



@pytest.fixture
def worker_env(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    config = tmp_path / "fast.toml"
    config.write_text("\n".join(f"{k} = {v}" for k, v in FAST.items()) + "\n")
    ledger = redis_server.url[:-1] + "1"
    redis.Redis.from_url(ledger).flushdb()
    yield {"REDIS_URL": redis_url, "LEDGER_URL": ledger, "CONFIG": str(config)}


def test_version_and_help() -> None:
    code, out = run("-V")
    assert code == 0 and out.startswith("sidequest ")
    code, out = run("--help")
    assert code == 0 and "--concurrency" in out and "NAME[,WEIGHT]" in out
    assert out.startswith("usage: sidequest [")
    code, out = run("run", "--help")  # named as typed
    assert code == 0 and out.startswith("usage: sidequest run [") and "--concurrency" in out


@pytest.mark.parametrize(("args", "message"), [
    (["-r", "no_such_module_xyz"], "could not import 'no_such_module_xyz'"),
    (["-c", "0"], "concurrency must be a whole number"),
    (["-q", "bad queue!"], "use ASCII letters, digits"),
    (["-q", "a,x"], "weight after the comma"),
    (["-C", "/nonexistent.toml"], "does not exist"),
    (["-C", ""], "argument -C/--config: an empty file name (an unset variable?)"),
    (["stats", "-C", ""], "argument -C/--config: an empty file name"),
    (["--concurency", "3"], "did you mean --concurrency (for --concurency)?"),
    (["stat"], "unknown command 'stat'; did you mean 'sidequest stats'?"),
    (["app/jobs.py"], "unknown command 'app/jobs.py'; to load your jobs from it, pass -r"),
    (["app:create_app()"], "unknown command 'app:create_app()'; to load your jobs from it,"
                           " pass -r 'app:create_app()'"),
    (["go"], "unknown command 'go'; the commands are run, dev"),
    # rq's and Celery's habits.
    (["info"], "unknown command 'info'; 'sidequest stats' shows the totals and queues"),
    (["worker"], "unknown command 'worker'; the worker is this command itself"),
    (["-r", "app.jobs", "high", "low"], "unrecognized arguments: high low; each queue takes"
                                        " a -q of its own, in the order they are served:"
                                        " -q high -q low"),
    (["--burst"], "--burst (rq) is not offered: the worker runs until it is stopped"),
    (["--url", "redis://localhost:6379/1"], "unrecognized arguments: --url"
                                             " redis://localhost:6379/1; --url (rq) is"
                                             " --redis-url here"),
    # Sidekiq's own flags, from a user's old command line.
    (["-P", "tmp/pids/sidekiq.pid"], "-P is the number of worker processes here (-P 4), neither"
                                      " Sidekiq's pidfile"),
    (["-d"], "-d (daemonize) is not offered, as in Sidekiq 6"),
    # A password on the command line, seen by every user (ps); then refused as no -c 0.
    (["--redis-url", "redis://:S3cret@127.0.0.1:1/0", "-c", "0"],
     "the Redis password in --redis-url can be read by every user of this machine (ps)"),
    (["-L", "log/sidekiq.log"], "-L (logfile) is not offered, as in Sidekiq 6: logs go to"),
])
def test_bad_flags_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    code, out = run(*args)
    assert code == 2 and message in out and "Traceback" not in out


def test_bad_config_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("concurency = 5\n")
    code, out = run("-C", str(path))
    assert code == 2 and "unknown setting 'concurency'" in out


def test_sidekiq_settings_are_answered_with_what_to_write(tmp_path: Path) -> None:
    """The walkthrough of a Sidekiq user: a pidfile setting, then their sidekiq.yml."""
    (tmp_path / "sk3.toml").write_text('require=["app.jobs"]\npidfile="x.pid"\n')
    code, out = run("-C", str(tmp_path / "sk3.toml"))
    assert code == 2 and "unknown setting 'pidfile'; Sidekiq 6 removed it too: run the" in out
    assert "Configuration section" not in out
    (tmp_path / "sidekiq.yml").write_text(":concurrency: 4\n:queues:\n  - [critical, 3]\n")
    code, out = run("-r", "app.jobs", "-C", str(tmp_path / "sidekiq.yml"))
    assert code == 2 and "Traceback" not in out and "not valid TOML" not in out
    assert "Sidequest reads a TOML settings file, not sidekiq.yml" in out
    assert '\n\nconcurrency = 4\nqueues = ["critical,3"]\n' in out


def test_a_colon_weight_is_a_warning_not_an_error() -> None:
    # The worker goes on (to fail on the missing module, before it needs Redis).
    code, out = run("-r", "no_such_module_here", "-q", "critical:3", "-q", "low")
    assert code == 2 and "could not import 'no_such_module_here'" in out
    assert ("queue 'critical:3' is a queue of that name, not 'critical' with weight 3: a weight"
            " follows a comma, -q critical,3") in out
    # A log line in the worker's format: with JSON logs, a JSON line (it was plain text).
    code, out = run("-r", "no_such_module_here", "-q", "critical:3", "--log-format", "json")
    (line,) = [ln for ln in out.splitlines() if "critical:3" in ln]
    assert json.loads(line)["lvl"] == "WARNING"


def test_json_logs_and_sigterm(worker_env: dict[str, str]) -> None:
    from apps.ledger_jobs import Quick

    proc = sidequest("-r", "apps.ledger_jobs", "-C", worker_env["CONFIG"], "--log-format", "json",
                     env=worker_env)
    out = Output(proc)
    jid = Quick.perform_async(1)
    line = json.loads(out.wait_for('"done"'))
    assert line["jid"] == jid and line["class"] == "tests.Quick" and float(line["elapsed"]) >= 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_ttin_dumps_threads_and_tstp_quiets(worker_env: dict[str, str], r: redis.Redis) -> None:
    proc = sidequest("-r", "apps.ledger_jobs", "-C", worker_env["CONFIG"], env=worker_env)
    out = Output(proc)
    out.wait_for("started")  # written before the threads start: ask until the fetcher is up

    last_ask = [0.0]

    def dumped_fetcher() -> bool:
        if time.monotonic() - last_ask[0] > 0.5:  # one dump per half second, not per poll
            last_ask[0] = time.monotonic()
            proc.send_signal(signal.SIGTTIN)
        return any("thread sidequest-fetcher" in line for line in list(out.lines))

    try:  # generous: phase 1 of make test runs several suites side by side on two cores
        wait_for(dumped_fetcher, timeout=40, what="a TTIN dump that shows the fetcher thread")
    except AssertionError as exc:  # say what the worker did instead
        raise AssertionError(f"{exc}; exit code {proc.poll()}; its last lines:\n"
                             + "\n".join(out.lines[-30:])) from None
    # Each frame on a line of its own: written out as one line, "\n" and all, it was unread.
    at = next(i for i, line in enumerate(out.lines) if "thread sidequest-fetcher" in line)
    frame = out.lines[at + 1]
    assert frame.startswith("  File ") and "\\n" not in frame, out.lines[at:at + 3]
    proc.send_signal(signal.SIGTSTP)
    wait_for(lambda: any(r.hget(m, "quiet") == "true" for m in r.smembers("processes")),
             what="quiet flag")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0


def test_stop_with_a_job_stuck_past_the_timeout(worker_env: dict[str, str],
                                               r: redis.Redis) -> None:
    from apps.ledger_jobs import Quick, Sleeper

    proc = sidequest("-r", "apps.ledger_jobs", "-C", worker_env["CONFIG"], "-t", "1",
                     env=worker_env)
    out = Output(proc)
    out.wait_for("started")
    ledger = redis.Redis.from_url(worker_env["LEDGER_URL"])
    stuck = Sleeper.perform_async(600)
    done = Quick.perform_async(1)
    wait_for(lambda: ledger.hexists("started", stuck) and ledger.hexists("done", done),
             what="both jobs to start")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(10)
    assert time.monotonic() - started < 1 + 2  # the timeout plus 2 s, at most
    assert code == 0  # a job was pushed back: still a graceful stop, as in Sidekiq
    (back,) = [json.loads(p) for p in r.lrange("queue:default", 0, -1)]
    assert back["jid"] == stuck  # the finished job is not pushed back
    assert r.keys("sq:inprogress:*") == []


@pytest.mark.parametrize("command", [["-r", "apps.fault_jobs"], ["stats"], ["status"]])
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_malformed_redis_url_is_one_clear_line_and_exit_2(command: list[str], how: str) -> None:
    if how == "flag":
        proc = sidequest(*command, "--redis-url", "localhost:6379")
    else:
        proc = sidequest(*command, env={"REDIS_URL": "localhost:6379",
                                        "SIDEQUEST_REDIS_URL": ""})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert "'localhost:6379' is not a Redis URL" in out and "redis://localhost:6379/0" in out
    assert "Traceback" not in out


def test_a_database_the_server_lacks_is_a_clear_error_not_a_wait(redis_url: str) -> None:
    # Redis answers SELECT 99 with an error: waiting would never help, so say what to fix.
    missing = redis_url.rsplit("/", 1)[0] + "/99"
    proc = sidequest("-r", "apps.fault_jobs", "--redis-url", missing)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert "names a database this server does not have" in out and "Traceback" not in out
    # With -P, the supervisor does not restart children that would fail the same way.
    proc = sidequest("-r", "apps.fault_jobs", "--redis-url", missing, "-P", "2")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert "stopped on a configuration error" in out and "starting another" not in out

    from sidequest import Job, connection
    from sidequest.errors import ConfigError

    class MissingDatabaseJob(Job):
        name = "MissingDatabaseJob"

        def perform(self) -> None:
            pass

    connection.configure(missing)
    try:
        with pytest.raises(ConfigError, match="names a database this server does not have"):
            MissingDatabaseJob.perform_async()
    finally:
        connection.configure(redis_url)


def test_a_missing_or_wrong_password_is_a_clear_error_not_a_wait(tmp_path: Path) -> None:
    # Before, the worker waited for Redis for good, and a push or `sidequest stats` gave
    # redis-py's words about HELLO AUTH.
    import shutil

    from sidequest import Job, connection
    from sidequest.errors import ConfigError

    guarded = RedisServer(shutil.which("redis-server") or "redis-server", tmp_path)
    guarded.start()
    try:
        guarded.client().config_set("requirepass", "sekret")
        plain = f"redis://127.0.0.1:{guarded.port}/0"
        wrong = f"redis://:wrong@127.0.0.1:{guarded.port}/0"
        for url, words in ((plain, "requires a password, and the URL gives none"),
                           (wrong, "refused the user name or password in the URL")):
            proc = sidequest("-r", "apps.fault_jobs", "--redis-url", url)
            out, _ = proc.communicate(timeout=30)
            assert proc.returncode == 2, out
            assert words in out and "redis://:PASSWORD@HOST:PORT/DB" in out, out
            assert "Traceback" not in out and "wrong" not in out  # the password stays hidden
            stats = sidequest("stats", "--redis-url", url)
            out, _ = stats.communicate(timeout=30)
            assert stats.returncode == 1 and words in out, out

            class PasswordJob(Job):
                name = "PasswordJob"

                def perform(self) -> None:
                    pass

            connection.configure(url)
            with pytest.raises(ConfigError, match=words):
                PasswordJob.perform_async()
    finally:
        connection.reset()
        guarded.stop()


def test_a_server_that_is_not_redis_is_a_clear_error_not_a_wait() -> None:
    # An HTTP server on the URL's port: redis-py's InvalidResponse, which no wait mends.
    import http.server
    import threading

    from sidequest import Job, connection
    from sidequest.errors import ConfigError

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"redis://127.0.0.1:{server.server_address[1]}/0"
    words = "does not answer as Redis does"
    try:
        proc = sidequest("-r", "apps.fault_jobs", "--redis-url", url)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 2 and words in out and "Traceback" not in out, out

        class NotRedisJob(Job):
            name = "NotRedisJob"

            def perform(self) -> None:
                pass

        connection.configure(url)
        with pytest.raises(ConfigError, match=words):
            NotRedisJob.perform_async()
    finally:
        connection.reset()
        server.shutdown()
        server.server_close()


def test_a_sentinel_url_at_a_plain_redis_reads_as_an_address(redis_url: str) -> None:
    # redis-py's message quotes each Sentinel client whole: about 1 KB of pool settings.
    port = redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]
    stats = sidequest("stats", "--redis-url", f"redis+sentinel://127.0.0.1:{port}/mymaster/0")
    out, _ = stats.communicate(timeout=30)
    assert stats.returncode == 1, out
    # redis-py names the address it asked, or (from 8.1) passes the server's refusal on.
    assert (f"No master found for 'mymaster' : Sentinel 127.0.0.1:{port} - " in out
            or "is a Redis, not a Sentinel (unknown command 'SENTINEL'" in out), out
    assert "ConnectionPool" not in out and "port 26379 by default" in out, out


def test_a_malformed_redis_url_in_code_fails_at_configure() -> None:
    from sidequest import connection
    from sidequest.errors import ConfigError

    with pytest.raises(ConfigError, match=r"is not a Redis URL.*redis://localhost:6379/0"):
        connection.configure("localhost:6379")
    with pytest.raises(ConfigError, match="the port must be a number"):
        connection.configure("redis://localhost:99999/0")


def _worker_log(worker_env: dict[str, str], *flags: str, push: Callable[[], object],
                until: str) -> tuple[subprocess.Popen[str], Output]:
    proc = sidequest("-r", "apps.output_jobs", "-C", worker_env["CONFIG"], *flags,
                     env=worker_env)
    out = Output(proc)
    out.wait_for("started")
    push()
    out.wait_for(until)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    return proc, out


@pytest.mark.parametrize("verbose", [False, True])
def test_a_failure_logs_its_traceback_once(worker_env: dict[str, str], verbose: bool) -> None:
    from apps.output_jobs import Divide

    _, out = _worker_log(worker_env, *(["-v"] if verbose else []),
                         push=lambda: Divide.perform_async(7), until="in _divide")
    text = "\n".join(out.lines)
    assert text.count("fail: ZeroDivisionError: division by zero") == 1
    assert "output_jobs.py" in text and "in _divide" in text
    # Compact at WARNING (frames one line each), the whole traceback with -v.
    assert ("Traceback (most recent call last)" in text) == verbose
    assert ("-v logs the whole traceback" in text) != verbose
    if not verbose:  # the job's frames, not Sidequest's around them (four of five before)
        frames = [line for line in text.splitlines() if line.startswith("    ") and " in " in line]
        assert frames and not any("/sidequest/" in line for line in frames), frames
        assert "frames outside Sidequest; -v logs" in text


def test_json_logs_carry_elapsed_as_a_number(worker_env: dict[str, str]) -> None:
    from apps.output_jobs import Divide

    _, out = _worker_log(worker_env, "--log-format", "json",
                         push=lambda: Divide.perform_async(1), until="ZeroDivisionError")
    fails = [json.loads(line) for line in out.lines if '"fail: ' in line]
    assert len(fails) == 1 and isinstance(fails[0]["elapsed"], float)
    assert "_divide" in fails[0]["msg"]


def test_job_output_comes_after_the_banner_in_whole_lines(worker_env: dict[str, str]) -> None:
    from apps.output_jobs import Chatty

    _, out = _worker_log(worker_env, "-c", "5",
                         push=lambda: Chatty.perform_bulk([[n] for n in range(5)]),
                         until="chatty-4-line-49-end")
    lines = list(out.lines)
    banner = next(i for i, line in enumerate(lines) if "started" in line)
    chatty = [i for i, line in enumerate(lines) if "chatty-" in line]
    assert chatty and banner < chatty[0]
    for i in chatty:
        assert re.fullmatch(r"chatty-\d-line-\d+-end", lines[i]), lines[i]
    assert len(chatty) == 250


def test_on_a_terminal_a_jobs_output_comes_between_its_start_and_done_lines(
    worker_env: dict[str, str],
) -> None:
    from apps.output_jobs import Chatty

    master, terminal = pty.openpty()
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidequest", "-r", "apps.output_jobs", "-C", worker_env["CONFIG"],
         "-c", "1"], env={**os.environ, **worker_env, "PYTHONPATH": path}, cwd=ROOT,
        stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal)
    STARTED.append(proc)
    os.close(terminal)
    seen: list[bytes] = []

    def read() -> None:
        with contextlib.suppress(OSError):  # EIO once the worker has closed the terminal
            while chunk := os.read(master, 65536):
                seen.append(chunk)

    threading.Thread(target=read, daemon=True).start()
    text = lambda: b"".join(seen).decode(errors="replace")  # noqa: E731
    wait_for(lambda: "started" in text(), 15, "the worker's banner")
    Chatty.perform_async(7)
    marker = "chatty-7-line-49-end"
    wait_for(lambda: marker in text() and "done" in text().split(marker, 1)[1], 15,
             "the job's done line")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    os.close(master)
    lines = text().replace("\r\n", "\n").splitlines()
    start = next(i for i, ln in enumerate(lines) if "tests.Chatty" in ln and "start" in ln)
    done = next(i for i, ln in enumerate(lines) if "tests.Chatty" in ln and "done" in ln)
    output = [i for i, ln in enumerate(lines) if ln.startswith("chatty-7-line-")]
    assert len(output) == 50 and start < output[0] and output[-1] < done, lines


def test_processes_log_json_with_their_own_pids(worker_env: dict[str, str]) -> None:
    proc = sidequest("-r", "apps.output_jobs", "-C", worker_env["CONFIG"], "-P", "2",
                     "--log-format", "json", env=worker_env)
    out = Output(proc)
    wait_for(lambda: sum('started: ' in line for line in out.lines) == 2, timeout=20,
             what="both worker processes to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    records = [json.loads(line) for line in out.lines if line.strip()]  # every line is JSON
    starts = {r["pid"] for r in records if "started: " in r["msg"]}
    supervisor = [r for r in records if r["msg"].startswith("supervisor ")]
    assert supervisor and supervisor[0]["pid"] == proc.pid
    assert len(starts) == 2 and proc.pid not in starts


def test_web_without_its_extra_says_so_once(tmp_path: Path) -> None:
    # A starlette that cannot be imported stands in for a missing extra.
    (tmp_path / "starlette").mkdir()
    (tmp_path / "starlette" / "__init__.py").write_text("raise ImportError('no starlette')\n")
    proc = sidequest("web", env={"PYTHONPATH": str(tmp_path)})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert out.count("needs its extra") == 1 and "pip install 'sidequest[web]'" in out


def test_web_help_answers_without_its_extra(tmp_path: Path) -> None:
    (tmp_path / "starlette").mkdir()
    (tmp_path / "starlette" / "__init__.py").write_text("raise ImportError('no starlette')\n")
    proc = sidequest("web", "--help", env={"PYTHONPATH": str(tmp_path)})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert out.startswith("usage: sidequest web") and "--port PORT" in out, out
    assert "pip install 'sidequest[web]'" in " ".join(out.split())  # argparse wraps it


def test_a_second_ctrl_c_says_a_stop_is_running_and_a_third_forces_it(
    worker_env: dict[str, str], r: redis.Redis,
) -> None:
    from apps.ledger_jobs import Sleeper

    proc = sidequest("-r", "apps.ledger_jobs", "-C", worker_env["CONFIG"], "-t", "30",
                     env=worker_env)
    out = Output(proc)
    out.wait_for("started")
    ledger = redis.Redis.from_url(worker_env["LEDGER_URL"])
    jid = Sleeper.perform_async(600)
    wait_for(lambda: ledger.hexists("started", jid), what="the job to start")
    proc.send_signal(signal.SIGINT)
    # Two signals sent at once arrive as one: send the second once the stop has begun.
    wait_for(lambda: any(r.hget(m, "quiet") == "true" for m in r.smembers("processes")),
             what="the graceful stop to begin")
    proc.send_signal(signal.SIGINT)
    out.wait_for("a graceful stop is in progress")
    assert proc.poll() is None  # still waiting for the job, as asked the first time
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 1
    # Forced: the job was not lost, it waits in the in-progress list for a reaper.
    held = [p for key in r.scan_iter("sq:inprogress:*") for p in r.lrange(key, 0, -1)]
    assert [json.loads(p)["jid"] for p in held] == [jid]


@pytest.mark.parametrize(("command", "code", "said"), [
    ([], 130, ""), (["dev", "--no-web"], 0, "stopped while starting"),
])
def test_ctrl_c_while_starting_stops_even_when_inherited_as_ignored(
    redis_url: str, tmp_path: Path, command: list[str], code: int, said: str,
) -> None:
    # A shell without job control starts background commands with INT ignored; the app
    # below takes as long to import as the test lets it, so the INT lands during start-up.
    (tmp_path / "slow_app.py").write_text(
        "import pathlib, sys, time\n"
        "print('loading the app', flush=True)\n"
        f"while not pathlib.Path({str(tmp_path / 'go')!r}).exists():\n"
        "    time.sleep(0.02)\n"
    )
    proc = sidequest(*command, "-r", "slow_app", env={
        "PYTHONPATH": str(tmp_path), "SIDEQUEST_REDIS_URL": redis_url,
    }, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    out = Output(proc)
    out.wait_for("loading the app")
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(15) == code, out.lines
    finally:
        (tmp_path / "go").touch()  # before the fix the INT was lost: let it finish importing
    assert not any("Traceback" in line for line in out.lines), out.lines
    assert said in "\n".join(out.lines)
