"""The fault harness: worker subprocesses, the ledger checker, Redis servers with flags.

- ``Worker``: ``python -m sidequest -r apps.fault_jobs -C <toml with fast timers>`` as a
  subprocess, its log in a file (a pipe nobody reads would block it), killed at the end.
- ``Ledger``: reads the append-only file the jobs write (tests/apps/fault_jobs.py), outside
  every fault, and ``check`` reports lost jobs (accepted, never done nor dead) and duplicates.
- ``flagged_server``: a RedisServer whose command line gets extra flags (AOF, maxmemory...).
- ``Supervisor``: restarts workers that die, as systemd or Kubernetes would.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from helpers import FAST, wait_for
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def write_config(path: Path, **overrides: Any) -> Path:
    """A worker TOML file: the FAST timers of tests/helpers.py, then ``overrides``."""
    values = {**FAST, **overrides}
    lines = []
    for key, value in values.items():
        if isinstance(value, str):
            lines.append(f"{key} = {json.dumps(value)}")
        elif isinstance(value, (list, tuple)):
            lines.append(f"{key} = {json.dumps(list(value))}")
        else:
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


class Worker:
    """One worker process. ``redis_url`` may point at a FaultProxy."""

    _count = 0

    def __init__(self, redis_url: str, ledger: Path, config: Path, workdir: Path,
                 *args: str, env: dict[str, str] | None = None) -> None:
        Worker._count += 1
        self.log_path = workdir / f"worker-{Worker._count}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in reap()
        environ = {**os.environ, "REDIS_URL": redis_url, "FAULT_LEDGER": str(ledger),
                   "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                   **(env or {})}
        environ.pop("SIDEQUEST_REDIS_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidequest", "-r", "apps.fault_jobs", "-C", str(config),
             "--log-level", "WARNING", *args],
            env=environ, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def identity(self, client: redis.Redis) -> str:
        for member in client.smembers("processes"):
            text = member.decode() if isinstance(member, bytes) else member
            if f":{self.pid}:" in text:
                return str(text)
        return ""

    def wait_registered(self, client: redis.Redis, timeout: float = 20.0) -> str:
        return wait_for(lambda: self.identity(client) or (self._died() and ""),
                        timeout, f"worker {self.pid} to register")

    def _died(self) -> bool:
        if not self.alive:
            raise AssertionError(f"worker {self.pid} exited ({self.proc.returncode}):\n"
                                 f"{self.log()}")
        return False

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def term(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)

    def reap(self, timeout: float = 15.0) -> int | None:
        """Stop it (TERM, then KILL after ``timeout``) and close its log."""
        if self.alive:
            self.term()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode

    def log(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Report:
    accepted: int
    done: int  # distinct jids with at least one "done" line
    lost: list[str]  # accepted, neither done nor dead (nor in ``pending``)
    reruns: dict[str, int]  # jid -> starts, for jids started more than once
    duplicates: dict[str, int]  # jid -> done lines, for jids done more than once
    dead_normal: list[str] = field(default_factory=list)  # accepted jids found in the dead set

    def text(self) -> str:
        return (f"{self.accepted} accepted, {self.done} done, {len(self.lost)} lost, "
                f"{len(self.duplicates)} done twice or more, {len(self.reruns)} started twice"
                f" or more, {len(self.dead_normal)} dead")


class Ledger:
    """The jobs' own record of every run: ``[event, jid, retry_count, pid, time]`` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def entries(self) -> list[list[Any]]:
        # One read, then lines: iterating the file would yield a line being written in two
        # pieces (its head at the end of the file, skipped; its tail, appended meanwhile, as
        # a line of its own), and the tail is not JSON.
        text = self.path.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]  # a line being written is read next time
        return [json.loads(line) for line in complete.splitlines()]

    def counts(self, event: str) -> collections.Counter[Any]:
        return collections.Counter(
            _key(e[1]) for e in self.entries() if e[0] == event)

    def done_count(self) -> int:
        return len(self.counts("done"))

    def check(self, accepted: Iterable[str], dead: Iterable[str] = (),
              pending: Iterable[str] = ()) -> Report:
        accepted = list(accepted)
        dead_set, pending_set = set(dead), set(pending)
        starts, dones = self.counts("start"), self.counts("done")
        lost = [j for j in accepted if not dones[j] and j not in dead_set and j not in pending_set]
        return Report(
            accepted=len(accepted),
            done=sum(1 for j in accepted if dones[j]),
            lost=lost,
            reruns={j: n for j, n in starts.items() if n > 1},
            duplicates={j: n for j, n in dones.items() if n > 1},
            dead_normal=[j for j in accepted if j in dead_set],
        )


def _key(jid: Any) -> Any:
    return jid if isinstance(jid, str) else json.dumps(jid)


def jids(members: Iterable[bytes | str]) -> list[str]:
    """The jids of a set's or list's JSON members (unreadable members are skipped)."""
    out = []
    for member in members:
        try:
            job = json.loads(member)
        except ValueError:
            continue
        if isinstance(job, dict) and isinstance(job.get("jid"), str):
            out.append(job["jid"])
    return out


def flagged_server(directory: Path, *flags: str) -> RedisServer:
    """A RedisServer that starts with extra command-line flags (later flags win in Redis).

    RedisServer builds its own argument list; a two-line wrapper script appends ours, and
    ``exec`` keeps the pid, so stop(kill=True) still kills redis-server itself.
    """
    import shutil

    executable = shutil.which("redis-server")
    assert executable is not None
    wrapper = directory / "redis-server-with-flags"
    quoted = " ".join(f"'{f}'" for f in flags)
    wrapper.write_text(f'#!/bin/sh\nexec {executable} "$@" {quoted}\n')
    wrapper.chmod(0o755)
    server = RedisServer(str(wrapper), directory)
    server.start()
    return server


class Supervisor:
    """Keeps ``count`` workers running: a worker that exits is replaced within ~50 ms."""

    def __init__(self, make: Any, count: int = 1) -> None:
        self._make = make
        self.workers: list[Worker] = [make() for _ in range(count)]
        self.exits: list[tuple[int, int | None]] = []  # (pid, returncode) of dead workers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for i, worker in enumerate(self.workers):
                if not worker.alive and not self._stop.is_set():
                    self.exits.append((worker.pid, worker.proc.returncode))
                    worker.reap()
                    self.workers[i] = self._make()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for worker in self.workers:
            worker.reap()
