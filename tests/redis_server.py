"""A real redis-server process for the test suite (never the user's 6379).

Kept apart from conftest.py so that fault tests can import ``RedisServer`` and
stop/start (or kill) Redis under a running worker.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# redis-py (>= 6) retries a failed command with exponential backoff by default, which
# turns "is it up yet / is it down" probes into seconds-long waits. Probes use this.
NO_RETRY = Retry(NoBackoff(), 0)


def free_port() -> int:
    """A port that was free a moment ago (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    host = "127.0.0.1"

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.dir = directory
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, db: int = 0, **kwargs: Any) -> redis.Redis:
        """A new client; kwargs go to redis.Redis (e.g. retry=NO_RETRY)."""
        return redis.Redis(host=self.host, port=self.port, db=db, decode_responses=False, **kwargs)

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) on self.port with the same dir; wait until it answers PING."""
        if self.running:
            return
        # Appending keeps the log of earlier runs when a fault test restarts the server.
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--save",
                "",  # no RDB snapshots: nothing touches the disk
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client(socket_timeout=1, retry=NO_RETRY)
        try:
            while True:
                if self._proc is not None and self._proc.poll() is not None:
                    # Exited early, e.g. the port was taken between free_port() and now.
                    raise RuntimeError(f"redis-server exited: {self.log_tail()}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server not answering after {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, kill: bool = False, timeout: float = 5.0) -> None:
        """SIGTERM (or SIGKILL with kill=True, to simulate a crash), then wait."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
