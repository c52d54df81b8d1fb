"""Fixtures for the interop suite: a real Ruby Sidekiq (Debian's ruby-sidekiq 6.4.1) and
Sidequest workers sharing the suite's redis-server (never port 6379).

- ``ruby``: the Ruby and ``sidekiq`` executables; skips (fails in CI) when Sidekiq is missing.
- ``run_ruby(script, data)``: runs a Ruby script with Sidekiq's client configured for the test
  Redis; the script calls ``emit(value)`` once and ``run_ruby`` returns that value (JSON).
  ``INPUT`` in the script is ``data`` (JSON, so bignums and floats arrive intact).
- ``sidekiq_process``: a ``sidekiq`` server running tests/interop/ruby/jobs.rb on ``default``.
- ``python_worker(*flags)``: starts a ``python -m sidequest -r apps.interop_jobs`` process.
- ``ledger``: database 1, where the jobs of both sides record their runs (see jobs.rb), with
  ``wait_done(jids)`` and ``check({jid: args}, runner)``.

Every process is stopped with TERM at teardown and must be gone afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from helpers import FAST, wait_for
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
JOBS_RB = Path(__file__).parent / "ruby" / "jobs.rb"
RUBY_HINT = (
    "Ruby Sidekiq is missing: install it with 'sudo apt-get install ruby-sidekiq' (Debian/Ubuntu)"
)
#: The line before the JSON document a Ruby script prints (Sidekiq may log to stdout too).
MARKER = "<<<interop-json>>>"
PRELUDE = f"""\
require "json"
require "sidekiq"
require "sidekiq/api"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
Sidekiq.logger = Sidekiq::Logger.new($stderr) # 6.4 logs to stdout by default
Sidekiq.configure_client {{ |c| c.redis = {{ url: ENV.fetch("REDIS_URL") }} }}
INPUT = JSON.parse(ENV.fetch("INTEROP_INPUT"))

def emit(value)
  $stdout.puts "{MARKER}"
  $stdout.puts JSON.generate(value)
  $stdout.flush
end

"""

RunRuby = Callable[..., Any]

#: Arguments that must cross between the languages unchanged: non-ASCII text, escapes, nested
#: hashes, integers around and beyond 64 bits, floats (integral, tiny, huge), nil and booleans.
SAMPLE_ARGS: list[Any] = [
    "plain ascii",
    "non-ASCII: héllo wörld, 日本語, emoji 🎉",
    'quotes " and \\ backslash, newline \n, tab \t, control \u0001',
    {"nested": {"list": [1, 2.5, None, True, False], "text": "ünïcödé"}, "empty": {}, "arr": []},
    2**62,
    2**64 + 1,
    -(2**70),
    0.1,
    1e-7,
    1.5e300,
    3.0,
    -0.5,
    None,
    True,
    False,
    [],
    "",
]


@pytest.fixture
def sample_args() -> list[Any]:
    return json.loads(json.dumps(SAMPLE_ARGS))  # a fresh copy


@dataclass(frozen=True)
class Ruby:
    executable: str
    sidekiq: str
    version: str


def _sidekiq_version(executable: str) -> str | None:
    try:
        proc = subprocess.run(
            [executable, "-e", 'require "sidekiq"; print Sidekiq::VERSION'],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


@pytest.fixture(scope="session")
def ruby() -> Ruby:
    executable, sidekiq = shutil.which("ruby"), shutil.which("sidekiq")
    version = _sidekiq_version(executable) if executable else None
    if executable is None or sidekiq is None or version is None:
        # In CI a missing Sidekiq is a broken setup (make test installs it), not a skip.
        if os.environ.get("CI") == "true":
            pytest.fail(RUBY_HINT)
        pytest.skip(RUBY_HINT)
    return Ruby(executable, sidekiq, version)


@pytest.fixture
def ledger_url(redis_server: RedisServer, redis_url: str) -> str:
    # redis_url has flushed every database, this one included.
    return redis_server.url.rsplit("/", 1)[0] + "/1"


def canonical(value: Any) -> str:
    """One JSON spelling per value: 1 and 1.0, True and 1, key order all stay distinct."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


class Ledger:
    """Database 1, where the jobs of both sides record their runs (see ruby/jobs.rb)."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def done(self) -> dict[str, int]:
        return {jid: int(n) for jid, n in self.r.hgetall("done").items()}

    def attempts(self, jid: str) -> int:
        return int(self.r.hget("attempts", jid) or 0)

    def wait_done(self, jids: Iterable[str], timeout: float = 20.0) -> None:
        wanted = set(jids)
        try:
            wait_for(lambda: wanted <= set(self.r.hkeys("done")), timeout,
                     f"{len(wanted)} jobs in the ledger")
        except AssertionError as exc:
            missing = wanted - set(self.r.hkeys("done"))
            raise AssertionError(f"{exc}; not run: {self.whereabouts(missing)}") from None

    def whereabouts(self, jids: set[str]) -> dict[str, str]:
        """Where each of ``jids`` sits in database 0 (a queue, a sorted set, a worker's
        in-progress list) and how often it was attempted: what a timeout failure prints."""
        found = {jid: f"nowhere in database 0 ({self.attempts(jid)} attempts)" for jid in jids}
        where = self.r.connection_pool.connection_kwargs
        with redis.Redis(where["host"], where["port"], 0, decode_responses=True) as data:
            for key in data.scan_iter(count=1000):
                kind = data.type(key)
                members = (data.lrange(key, 0, -1) if kind == "list" else
                           data.zrange(key, 0, -1) if kind == "zset" else [])
                for member in members:
                    for jid in jids:
                        if jid in member:
                            found[jid] = f"{kind} {key} ({self.attempts(jid)} attempts)"
        return found

    def check(self, expected: dict[str, list[Any]], runner: str) -> None:
        """Each jid ran exactly once, on ``runner``'s side, with exactly these arguments."""
        jids = list(expected)
        counts = dict(zip(jids, self.r.hmget("done", jids), strict=True))
        assert counts == dict.fromkeys(jids, "1"), "each job ran exactly once"
        runners = dict(zip(jids, self.r.hmget("runner", jids), strict=True))
        assert runners == dict.fromkeys(jids, runner)
        for jid, recorded in zip(jids, self.r.hmget("args", jids), strict=True):
            assert recorded is not None
            assert canonical(json.loads(recorded)) == canonical(expected[jid]), jid


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    client = redis.Redis.from_url(ledger_url, decode_responses=True)
    try:
        yield Ledger(client)
    finally:
        client.close()


@pytest.fixture
def run_ruby(ruby: Ruby, redis_url: str, ledger_url: str, tmp_path: Path) -> RunRuby:
    scripts = iter(range(1_000_000))

    def run(script: str, data: Any = None, timeout: float = 30.0) -> Any:
        path = tmp_path / f"script-{next(scripts)}.rb"
        path.write_text(PRELUDE + script, encoding="utf-8")
        env = {**os.environ, "REDIS_URL": redis_url, "LEDGER_URL": ledger_url,
               "INTEROP_INPUT": json.dumps(data)}
        proc = subprocess.run([ruby.executable, str(path)], env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            pytest.fail(f"ruby {path.name} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
        _, found, document = proc.stdout.rpartition(MARKER + "\n")
        if not found:
            pytest.fail(f"ruby {path.name} printed no result:\n{proc.stdout[-2000:]}")
        return json.loads(document)

    return run


def identity_of(r: redis.Redis, pid: int) -> str | None:
    """The identity (``host:pid:nonce``) under which process ``pid`` beats, if it does."""
    for member in r.smembers("processes"):
        name = member.decode() if isinstance(member, bytes) else str(member)
        if f":{pid}:" in name and r.hexists(name, "info"):
            return name
    return None


@dataclass
class Server:
    """A worker process of either kind; ``stop`` sends TERM and waits for it to be gone."""

    kind: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    identity: str = ""
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.closed:
            self.log.flush()
        text = self.log_path.read_text("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_registered(self, r: redis.Redis, timeout: float = 20.0) -> str:
        def check() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            return identity_of(r, self.pid)

        self.identity = wait_for(check, timeout, f"{self.kind} (pid {self.pid}) to beat")
        return self.identity

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"{self.kind} still running {timeout}s after TERM:\n{self.log_tail()}"
            ) from None
        finally:
            self.stopped = True
            self.log.close()
        return code

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)


def _stop_all(servers: list[Server], r: redis.Redis, codes: tuple[int, ...]) -> None:
    """Teardown: TERM every server a test left running, all of them even if one misbehaves;
    each must exit with one of ``codes`` and leave the ``processes`` set."""
    problems = []
    for server in servers:
        if server.stopped:
            continue
        try:
            code = server.stop()
        except AssertionError as exc:
            problems.append(str(exc))
            continue
        if code not in codes:
            problems.append(f"{server.kind} exited with {code}:\n{server.log_tail()}")
        elif server.identity in r.smembers("processes"):
            problems.append(f"{server.kind} left {server.identity} in `processes`")
    assert not problems, "\n\n".join(problems)


def _start(kind: str, argv: list[str], env: dict[str, str], log_path: Path) -> Server:
    log = open(log_path, "wb")  # noqa: SIM115 - closed by Server.wait_exit
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    return Server(kind, proc, log_path, log)


@pytest.fixture
def start_sidekiq(
    ruby: Ruby, redis_url: str, ledger_url: str, r: redis.Redis, tmp_path: Path
) -> Iterator[Callable[..., Server]]:
    """Start ``sidekiq -r jobs.rb -q default -c 5`` (extra flags appended); all are stopped
    with TERM at teardown, must exit 0 and leave the ``processes`` set."""
    servers: list[Server] = []

    def start(*flags: str) -> Server:
        env = {**os.environ, "REDIS_URL": redis_url, "LEDGER_URL": ledger_url}
        argv = [ruby.sidekiq, "-r", str(JOBS_RB), "-q", "default", "-c", "5", "-t", "5", *flags]
        server = _start("sidekiq", argv, env, tmp_path / f"sidekiq-{len(servers)}.log")
        servers.append(server)
        server.wait_registered(r)
        return server

    yield start
    _stop_all(servers, r, codes=(0,))


@pytest.fixture
def sidekiq_process(start_sidekiq: Callable[..., Server]) -> Server:
    return start_sidekiq()


@pytest.fixture
def fast_toml(tmp_path: Path) -> Path:
    path = tmp_path / "fast.toml"
    path.write_text("".join(f"{key} = {value}\n" for key, value in FAST.items()))
    return path


@pytest.fixture
def python_worker(
    redis_url: str, ledger_url: str, r: redis.Redis, fast_toml: Path, tmp_path: Path
) -> Iterator[Callable[..., Server]]:
    """Start ``python -m sidequest -r apps.interop_jobs -C fast.toml`` plus ``flags``; all
    are stopped with TERM at teardown and must exit 0, or 1 when they had to push a job back
    (a test that stops one itself checks the exact code)."""
    servers: list[Server] = []

    def start(*flags: str) -> Server:
        path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "LEDGER_URL": ledger_url, "PYTHONPATH": path}
        argv = [sys.executable, "-m", "sidequest", "-r", "apps.interop_jobs", "-C", str(fast_toml),
                "--redis-url", redis_url, "--log-level", "WARNING", *flags]
        server = _start("sidequest", argv, env, tmp_path / f"sidequest-{len(servers)}.log")
        servers.append(server)
        server.wait_registered(r)
        return server

    yield start
    _stop_all(servers, r, codes=(0, 1))
