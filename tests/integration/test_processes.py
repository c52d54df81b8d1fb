"""``sidequest -P N``: a supervisor forks N workers, restarts the ones that die, and stops
them all on TERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from helpers import FAST, wait_for
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def pids(r: redis.Redis) -> set[int]:
    return {int(member.split(":")[1]) for member in r.smembers("processes")}


def ledger_setup(redis_server: RedisServer, tmp_path: Path,
                 ) -> tuple[Path, redis.Redis, dict[str, str]]:
    """The FAST settings file, an emptied ledger (database 1) for apps.ledger_jobs, and the
    environment a worker command needs for both."""
    config = tmp_path / "fast.toml"
    config.write_text("\n".join(f"{k} = {v}" for k, v in FAST.items()) + "\n")
    ledger_url = redis_server.url[:-1] + "1"
    ledger = redis.Redis.from_url(ledger_url, decode_responses=True)
    ledger.flushdb()
    env = {**os.environ, "REDIS_URL": redis_server.url, "LEDGER_URL": ledger_url,
           "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return config, ledger, env


def test_forks_restarts_and_stops_workers(redis_server: RedisServer, r: redis.Redis,
                                          tmp_path: Path) -> None:
    config, ledger, env = ledger_setup(redis_server, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidequest", "-P", "2", "-c", "2", "-r", "apps.ledger_jobs",
         "-C", str(config), "--log-level", "WARNING"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = wait_for(lambda: pids(r) if len(pids(r)) == 2 else None, what="two workers")
        assert proc.pid not in first  # the supervisor itself does no work
        # Nor has it any thread but its main one: fork() copies only the calling thread, and
        # a lock another one held (a log line half written) would stay locked in the child.
        assert os.listdir(f"/proc/{proc.pid}/task") == [str(proc.pid)]
        from apps.ledger_jobs import Quick

        jids = Quick.perform_bulk([[i] for i in range(200)])
        wait_for(lambda: ledger.hlen("done") == 200, what="all jobs done")
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(pids(r) - {victim}) == 2, timeout=20, what="a replacement worker")
        more = Quick.perform_bulk([[i] for i in range(50)])
        wait_for(lambda: ledger.hlen("done") == 250, what="jobs after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    assert set(ledger.hgetall("done")) == set(jids) | set(more)
    # The surviving workers left the process set; only the SIGKILLed one lingers until its
    # record expires, as a crashed process's does.
    assert pids(r) <= {victim}


def test_workers_stop_when_their_supervisor_is_killed(redis_server: RedisServer,
                                                      r: redis.Redis, tmp_path: Path) -> None:
    config = tmp_path / "fast.toml"
    config.write_text("\n".join(f"{k} = {v}" for k, v in FAST.items()) + "\n")
    env = {**os.environ, "REDIS_URL": redis_server.url,
           "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidequest", "-P", "2", "-c", "1", "-r", "apps.ledger_jobs",
         "-C", str(config), "--log-level", "WARNING"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = wait_for(lambda: pids(r) if len(pids(r)) == 2 else None, what="two workers")
    proc.kill()  # SIGKILL: the supervisor cannot tell its children anything
    proc.wait(10)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    # Each child is sent SIGTERM by the kernel, stops gracefully and leaves the process set.
    wait_for(lambda: all(gone(pid) for pid in children) and not pids(r), timeout=20,
             what="the orphaned workers to stop")


def signal_the_group(server: RedisServer, r: redis.Redis, tmp_path: Path,
                     *signals: signal.Signals) -> tuple[int, str]:
    """Run ``sidequest -P 2`` in a process group of its own, as a terminal makes; once both
    workers are up send each of ``signals`` to the whole group, waiting after each for the
    log to grow; then Ctrl-C it. Returns its exit code and its output."""
    # No job runs, so the stop is quick; a long shutdown timeout keeps the watchdog (which
    # kills a worker 1.5 s past it) away from a worker that is merely slow on a loaded host.
    config = tmp_path / "fast.toml"
    settings = {**FAST, "timeout": 15.0}
    config.write_text("\n".join(f"{k} = {v}" for k, v in settings.items()) + "\n")
    env = {**os.environ, "REDIS_URL": server.url,
           "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidequest", "-P", "2", "-c", "1", "-r", "apps.ledger_jobs",
             "-C", str(config)], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        wait_for(lambda: pids(r) if len(pids(r)) == 2 else None, what="two workers")
        for signum in signals:
            size = log.stat().st_size
            os.killpg(proc.pid, signum)
            wait_for(lambda s=size: log.stat().st_size > s, what=f"an answer to {signum.name}")
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return code, log.read_text()


def ended(code: int, text: str) -> str:
    """The exit code, then the log's end, where a failed stop says why (the start of a long
    log is cut off first where failures are shown)."""
    return f"exit code {code}; the log's last lines:\n" + "\n".join(text.splitlines()[-40:])


def test_one_ctrl_c_to_the_whole_group_is_one_graceful_stop(redis_server: RedisServer,
                                                           r: redis.Redis,
                                                           tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process of the group, and the supervisor forwards
    it too: each worker hears it twice at once, which is still the first press, not the
    second that says how to force a stop."""
    code, text = signal_the_group(redis_server, r, tmp_path)
    assert code == 0, ended(code, text)
    assert text.count("stopping: waiting up to") == 2, text  # each worker stops gracefully
    assert "graceful stop is in progress" not in text, text
    assert not pids(r), text


def test_a_thread_dump_to_the_whole_group_prints_once_per_worker(redis_server: RedisServer,
                                                                r: redis.Redis,
                                                                tmp_path: Path) -> None:
    """TTIN to the group reaches each worker from the OS and from the supervisor: one dump
    each, not two."""
    code, text = signal_the_group(redis_server, r, tmp_path, signal.SIGTTIN)
    assert code == 0, ended(code, text)
    assert text.count("thread MainThread:") == 2, text


def test_a_worker_killed_while_stopping_is_reported_and_fails_the_exit_code(
        redis_server: RedisServer, r: redis.Redis, tmp_path: Path) -> None:
    """A worker that dies by a signal during the shutdown did not stop gracefully: the
    supervisor says so and exits 1, rather than counting it as a clean exit."""
    config, _, env = ledger_setup(redis_server, tmp_path)
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidequest", "-P", "2", "-c", "1", "-r", "apps.ledger_jobs",
             "-C", str(config)], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(pids(r)) == 2, what="two workers")
        from apps.ledger_jobs import Slow

        Slow.perform_async(30)  # its worker's graceful stop waits the 2 s timeout on it
        victim = wait_for(lambda: next((int(m.split(":")[1]) for m in r.smembers("processes")
                                        if r.hlen(f"{m}:work")), None), what="a busy worker")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: log.read_text().count("stopping: waiting up to") == 2,
                 what="both workers stopping")
        os.kill(victim, signal.SIGKILL)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert code == 1, text
    assert f"worker process {victim} ended while stopping (killed by signal 9)" in text, text


def test_a_killed_workers_jobs_run_again_at_once_not_after_its_lease(
        redis_server: RedisServer, r: redis.Redis, tmp_path: Path) -> None:
    # The supervisor reaps a killed child, so it knows it dead: the child replacing it
    # recovers its jobs at start, where a reaper would wait for the lease (30 s here).
    config, ledger, env = ledger_setup(redis_server, tmp_path)
    slow_lease = {**FAST, "lease_ttl": 30.0, "reaper_interval": 30.0}
    config.write_text("\n".join(f"{k} = {v}" for k, v in slow_lease.items()) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidequest", "-P", "2", "-c", "1", "-r", "apps.ledger_jobs",
         "-C", str(config), "--log-level", "WARNING"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(pids(r)) == 2, what="two workers")
        from apps.ledger_jobs import Slow

        jid = Slow.perform_async(30)
        wait_for(lambda: ledger.hget("started", jid) == "1", what="the job to start")
        (owner,) = [key.removeprefix("sq:inprogress:") for key in r.scan_iter("sq:inprogress:*")
                    if r.llen(key)]
        os.kill(int(owner.split(":")[1]), signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: ledger.hget("started", jid) == "2", timeout=15,
                 what="the job to start again")
        assert time.monotonic() - killed < 15  # its lease had 30 s to run
        assert not r.exists(f"sq:lease:{owner}", owner, f"{owner}:work")
        assert owner not in r.smembers("processes")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0


def start_group(redis_server: RedisServer, r: redis.Redis,
                tmp_path: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    """``sidequest -P 2 -c 1`` on the ledger app, once both workers have registered; and
    their pids."""
    config, _, env = ledger_setup(redis_server, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidequest", "-P", "2", "-c", "1", "-r", "apps.ledger_jobs",
         "-C", str(config), "--log-level", "WARNING"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc, wait_for(lambda: pids(r) if len(pids(r)) == 2 else None,
                              what="two workers")
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def test_a_stop_from_the_dashboard_is_not_undone_by_the_supervisor(
        redis_server: RedisServer, r: redis.Redis, tmp_path: Path) -> None:
    # Stop (the dashboard's, the API's, Sidekiq's Web UI's) on each process of a -P group:
    # the supervisor used to start a replacement under a new identity at once.
    from sidequest.api import ProcessSet

    proc, first = start_group(redis_server, r, tmp_path)
    try:
        (one, other) = sorted(ProcessSet().processes(), key=lambda p: p.pid)
        one.stop()
        wait_for(lambda: pids(r) == {other.pid}, timeout=20, what="the first one gone")
        assert proc.poll() is None, "the other is still supervised"
        other.stop()
        code = proc.wait(30)  # none left: the supervisor is done
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0 and pids(r) == set() and first == {one.pid, other.pid}


def replaced(r: redis.Redis, victim: int, known: set[int]) -> str:
    """SIGKILL ``victim`` (a worker of the group) and return the process-set member of the
    worker started in its place (not one of ``known``, the pids seen so far)."""
    os.kill(victim, signal.SIGKILL)

    def fresh() -> str | None:
        new = [m for m in r.smembers("processes") if int(m.split(":")[1]) not in known]
        return new[0] if new else None

    return wait_for(fresh, timeout=20, what=f"a replacement for {victim}")


def test_a_quieted_group_replaces_a_dead_worker_with_a_quiet_one(
        redis_server: RedisServer, r: redis.Redis, tmp_path: Path) -> None:
    proc, first = start_group(redis_server, r, tmp_path)
    try:
        proc.send_signal(signal.SIGTSTP)  # before a deploy: quiet the whole group

        def quiet_pids() -> set[int]:
            return {int(m.split(":")[1]) for m in r.smembers("processes")
                    if r.hget(m, "quiet") == "true"}

        wait_for(lambda: quiet_pids() == first, what="both quiet")
        victim = min(first)
        member = replaced(r, victim, first)
        # Quiet from its first beat (and so from before its first fetch), not soon after.
        assert r.hget(member, "quiet") == "true"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_process_quieted_from_the_dashboard_is_replaced_by_a_quiet_one(
        redis_server: RedisServer, r: redis.Redis, tmp_path: Path) -> None:
    from sidequest.api import ProcessSet

    proc, first = start_group(redis_server, r, tmp_path)
    try:
        victim = min(first)
        (quieted,) = [p for p in ProcessSet().processes() if p.pid == victim]
        quieted.quiet()  # the dashboard's Quiet on this one row: the supervisor never sees it
        wait_for(lambda: r.hget(quieted.identity, "quiet") == "true", what="the quiet")
        member = replaced(r, victim, first)
        assert r.hget(member, "quiet") == "true"
        (other,) = [m for m in r.smembers("processes") if int(m.split(":")[1]) == max(first)]
        assert r.hget(other, "quiet") == "false"  # only the quieted one's slot
        # And its replacement's replacement: quiet too, though none told it to be.
        second = int(member.split(":")[1])
        third = replaced(r, second, first | {second})
        assert r.hget(third, "quiet") == "true"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_stopped_process_that_ends_by_its_hard_deadline_is_not_replaced(
        redis_server: RedisServer, r: redis.Redis, tmp_path: Path) -> None:
    # Stop from the dashboard, and a job that then holds the GIL past the shutdown timeout:
    # the process ends by its hard deadline (exit 1), not as a stop asked for (exit 3).
    from sidequest.api import ProcessSet

    config, _, env = ledger_setup(redis_server, tmp_path)
    ledger = tmp_path / "ledger.jsonl"
    log = tmp_path / "supervisor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidequest", "-P", "2", "-c", "1", "-r", "apps.fault_jobs",
             "-C", str(config), "--log-level", "INFO"],
            env={**env, "FAULT_LEDGER": str(ledger)}, cwd=ROOT, stdout=out, stderr=out)
    try:
        first = wait_for(lambda: pids(r) if len(pids(r)) == 2 else None, what="two workers")
        r.lpush("queue:default", json.dumps({"class": "fault.HoldGilOnStop", "args": [15],
                                             "queue": "default", "retry": True,
                                             "jid": "b" * 24, "created_at": time.time(),
                                             "enqueued_at": time.time()}))
        started = wait_for(lambda: ledger.exists() and ledger.read_text(), what="the job")
        runner = json.loads(started.splitlines()[0])[3]
        (stopped,) = [p for p in ProcessSet().processes() if p.pid == runner]
        stopped.stop()
        said = wait_for(lambda: "not starting another" in log.read_text() and log.read_text(),
                        timeout=30, what="the supervisor to let it go")
        assert f"worker process {runner} was stopped from the dashboard" in said
        assert "starting another" not in said.replace("not starting another", "")
        assert pids(r) - {runner} == first - {runner}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
