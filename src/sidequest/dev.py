"""``sidequest dev``: a worker for local development, with a private Redis when none is set.

    sidequest dev                                   the example shop, with demo traffic
    sidequest dev -r myapp.jobs -q default -q low   your app; the same flags as sidequest run

The dashboard runs beside the worker on http://127.0.0.1:7433/ (another free port if that one
is taken; ``--web-port``, ``--no-web``), without a login unless ``SIDEQUEST_WEB_PASSWORD`` is
set: it listens on the loopback only.

Without ``--redis-url`` (or ``redis_url`` in a ``-C`` file), ``SIDEQUEST_REDIS_URL`` or
``REDIS_URL``, your app's worker uses a Redis answering on localhost:6379 (where the app
pushes with no setting); the example shop, or your app when none answers there, gets a
throwaway ``redis-server``, started on a free loopback port, writing
nothing to disk, and stopped on exit: on Ctrl-C, on SIGTERM, and (on Linux) by the kernel
if this process dies without cleaning up.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from sidequest import app_loader, connection, environ, runner
from sidequest.config import Config
from sidequest.errors import ConfigError

if TYPE_CHECKING:
    from sidequest.web.server import BackgroundServer

EXAMPLE_APP = "examples.shop.jobs"
EXAMPLE_TRAFFIC = "examples.shop.traffic"
EXAMPLE_QUEUES = (("critical", 3), ("default", 2), ("low", 1))
INSTALL_HINT = (
    "sidequest dev: redis-server is not installed; install it with:"
    " sudo apt-get install redis-server, or point REDIS_URL at a running Redis"
)
HOST = "127.0.0.1"
WEB_PORT = 7433
#: Where an app's perform_async goes with no setting (redis://localhost:6379/0).
DEFAULT_REDIS_PORT = 6379
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class RedisStartError(Exception):
    """The private redis-server did not come up."""


def main(argv: list[str]) -> int:
    args = _dev_parser().parse_args(argv)
    if args.print_env:  # about Redis only: no app to load, so no -r needed
        return _print_env(*_redis_choice(args, runner.config_from_args(args)))
    config, demo = _dev_config(args)
    traffic = demo and not args.no_demo_traffic
    config, source = _redis_choice(args, config, shared=not demo)
    if source:
        _say(f"Redis: {connection.redacted(config.redis_url or connection.url())} ({source})")
        return _run(config, traffic, _web_port(args))
    executable = shutil.which("redis-server")
    if executable is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_on_term)  # until the worker installs its own
    try:
        with private_redis(executable) as url:
            connection.configure(redis_url=url)
            _say(f"Redis: {connection.redacted(url)} (private; stopped on exit)")
            _say("your app pushes to localhost:6379 unless told otherwise; in the shell that"
                 f" runs it:\n\n    export REDIS_URL={url}\n")
            return _run(replace(config, redis_url=url), traffic, _web_port(args))
    except RedisStartError as exc:
        print(f"sidequest dev: could not start redis-server: {exc}", file=sys.stderr)
        return 1


def _redis_choice(args: argparse.Namespace, config: Config,
                  shared: bool = True) -> tuple[Config, str]:
    """The Redis configured, else (when ``shared``) one answering on the default port; and
    where it came from ("" when there is neither: dev then starts a private one). The
    example app is not ``shared``: its demo traffic, failures and dead jobs must not land in
    the database a developer's own apps use."""
    source = _configured_by(args, config)
    if not source and shared and _answers_ping(DEFAULT_REDIS_PORT):
        # The Redis the app's own perform_async reaches without any setting: use it, so the
        # worker and the app meet.
        config = replace(config, redis_url=connection.DEFAULT_URL)
        source = f"already running on {HOST}:{DEFAULT_REDIS_PORT}, where your app pushes too"
    return config, source


def _print_env(config: Config, source: str) -> int:
    """``--print-env``: the export line for the Redis dev would use, for the app's shell."""
    if source:
        print(f"export REDIS_URL={config.redis_url or connection.url()}")
        return 0
    print("sidequest dev: no Redis is configured and none answers on"
          f" {HOST}:{DEFAULT_REDIS_PORT}, so dev would start a private one on a free port;"
          " start Redis (sudo apt-get install redis-server) or run sidequest dev and copy the"
          " export line it prints", file=sys.stderr)
    return 1


def _dev_parser() -> argparse.ArgumentParser:
    parser = runner.parser()
    parser.prog = "sidequest dev"
    parser.description = (
        "Run a worker for local development: the example app unless -r is given, and a"
        " private redis-server unless Redis is configured."
    )
    parser.epilog = "Example: sidequest dev -r myapp.jobs -q default -q low"
    parser.add_argument("--no-demo-traffic", action="store_true",
                        help="with the example app, do not enqueue example jobs every second")
    parser.add_argument("--web-port", type=int, default=WEB_PORT,
                        help=f"port of the dashboard on 127.0.0.1 (default {WEB_PORT}; 0: any)")
    parser.add_argument("--no-web", action="store_true", help="do not start the dashboard")
    parser.add_argument("--print-env", action="store_true",
                        help="print the export REDIS_URL=... line for your app's shell, and exit")
    return parser


def _web_port(args: argparse.Namespace) -> int | None:
    return None if args.no_web else int(args.web_port)


def _dev_config(args: argparse.Namespace) -> tuple[Config, bool]:
    """The worker's Config, and whether it runs the example app (no -r was given)."""
    config = runner.config_from_args(args)
    if config.require:
        return config, False
    if not (Path.cwd() / "examples" / "shop" / "jobs.py").is_file():
        raise ConfigError(
            f"no -r given and the example app (examples/shop) is not in {Path.cwd()}: pass"
            " -r yourapp.jobs, or run sidequest dev from the root of a Sidequest checkout"
        )
    if not args.queue and config.queues == Config().queues:
        config = replace(config, queues=EXAMPLE_QUEUES)
    return replace(config, require=(EXAMPLE_APP,)), True


def _configured_by(args: argparse.Namespace, config: Config) -> str:
    """Where the Redis URL comes from, or "" when none is configured."""
    if config.redis_url:
        return "from --redis-url" if args.redis_url else f"from {args.config}"
    for name in (environ.REDIS_URL, environ.PLAIN_REDIS_URL):
        if os.environ.get(name):
            return f"from ${name}"
    return ""


def _run(config: Config, traffic: bool, web_port: int | None = None) -> int:
    """Announce what runs, then run the worker (and the demo traffic) until stopped."""
    processes = f" in each of {config.processes} processes" if config.processes > 1 else ""
    _say(f"Worker: {', '.join(config.require)} on queues {_queues(config)},"
         f" {config.concurrency} threads{processes}")
    if config.redis_url:  # the dashboard, up while the worker starts, reads this Redis too
        connection.set_url(config.redis_url)
    dashboard = _start_dashboard(web_port) if web_port is not None else None
    stop = threading.Event()
    thread = _start_traffic(stop) if traffic else None
    if thread:
        _say("Demo traffic: enqueuing example jobs every second (--no-demo-traffic turns it off)")
    _say("Press Ctrl-C to stop.")
    try:
        return runner.run_worker(config, config.processes)
    except KeyboardInterrupt:
        # Ctrl-C before the worker had installed its own handler (it was still starting):
        # a stop asked for, not a crash. Anything it fetched is recovered by its lease.
        _say("stopped while starting")
        return 0
    finally:
        stop.set()
        if dashboard is not None:
            dashboard.stop()
        if thread is not None:
            # Launcher.stop() has joined the worker's own threads; the demo's may be in the
            # middle of a push, which must end before the private Redis is stopped.
            thread.join(config.fetch_timeout + 1.0)


def _start_dashboard(port: int) -> BackgroundServer | None:
    """The dashboard on the loopback, in a thread; None when the web extra is missing."""
    try:
        # The dashboard is an optional extra: imported only when it is there to be used.
        from sidequest.web.server import BackgroundServer, build_app  # noqa: PLC0415
    except ImportError as exc:
        extra = "pip install 'sidequest[web]'"
        hint = "" if extra in str(exc) else f"; install it with: {extra}"
        _say(f"Dashboard: not started ({exc}){hint}")
        return None
    try:
        app = build_app(HOST)
        server = BackgroundServer(app, HOST, port if port and _port_free(port) else 0).start()
    except (ConfigError, OSError) as exc:
        _say(f"Dashboard: not started: {exc}")
        return None
    login = "password login" if os.environ.get(environ.WEB_PASSWORD) else "no login"
    _say(f"Dashboard: {server.url} ({login}, loopback only)")
    return server


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _queues(config: Config) -> str:
    if config.strict:
        return ", ".join(config.queue_names) + " (strict order)"
    return ", ".join(f"{name} (weight {weight})" for name, weight in config.queues)


def _start_traffic(stop: threading.Event) -> threading.Thread:
    app_loader.load_app((EXAMPLE_TRAFFIC,))  # puts the current directory on sys.path first
    run: Callable[[threading.Event], None] = importlib.import_module(EXAMPLE_TRAFFIC).run
    thread = threading.Thread(target=run, args=(stop,), name="sidequest-demo-traffic",
                              daemon=True)
    thread.start()
    return thread


def _say(text: str) -> None:
    print(f"sidequest dev: {text}", flush=True)


def _exit_on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


# -- the private redis-server ------------------------------------------------------------


@contextmanager
def private_redis(executable: str) -> Iterator[str]:
    """Run a redis-server on a free loopback port in a temporary directory; yield its URL."""
    with tempfile.TemporaryDirectory(prefix="sidequest-dev-",
                                     ignore_cleanup_errors=True) as directory:
        proc, url = _start_redis(executable, Path(directory))
        # Its log only explains a failed start, and it writes nothing else (no save): gone
        # now, nothing is left behind when this process is killed or forced to stop (a
        # third Ctrl-C), which runs no cleanup.
        shutil.rmtree(directory, ignore_errors=True)
        try:
            yield url
        finally:
            _stop_redis(proc)
            _say("stopped the private Redis")


def _start_redis(executable: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start and wait for PING; a port taken between choosing and binding is tried again."""
    error = RedisStartError("no attempt made")
    for _ in range(3):
        port = _free_port()
        url = f"redis://{HOST}:{port}/0"
        proc = _spawn_redis(executable, port, directory)
        try:
            _wait_ready(proc, port, directory / "redis.log")
            return proc, url
        except BaseException as exc:  # Ctrl-C while starting must not leave it running
            _stop_redis(proc)
            if not isinstance(exc, RedisStartError):
                raise
            error = exc
    raise error


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _spawn_redis(executable: str, port: int, directory: Path) -> subprocess.Popen[bytes]:
    command = [executable, "--port", str(port), "--bind", HOST, "--dir", str(directory),
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--logfile", str(directory / "redis.log")]
    # A session of its own: the terminal's Ctrl-C goes to the worker only, which must still
    # reach Redis while it stops gracefully; we stop Redis after the worker. preexec_fn is
    # safe here: no thread has been started yet.
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_parent_death_signal())  # noqa: PLW1509


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, have the kernel TERM redis-server if we die without stopping it (SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_signal


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers_ping(port):
        if proc.poll() is not None:
            raise RedisStartError(f"it exited: {_tail(log)}")
        if time.monotonic() > deadline:
            raise RedisStartError(f"no answer on port {port} after {START_TIMEOUT:g}s")
        time.sleep(0.05)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:]) or "(no log)"
    except OSError:
        return "(no log)"


def _stop_redis(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
