"""``sidequest web``: the dashboard served by uvicorn, and a background server for
``sidequest dev`` and the browser tests.

    sidequest web                              http://127.0.0.1:7433
    SIDEQUEST_WEB_PASSWORD=... sidequest web --host 0.0.0.0 --port 8080

On a loopback address it runs without a login unless ``SIDEQUEST_WEB_PASSWORD`` is set, and
then answers only Host headers naming the loopback (a web page cannot reach it through DNS
rebinding). On any other address it refuses to start without a password, unless
``--insecure`` says that something in front of it checks who may use it.

Behind a TLS proxy, ``--https`` marks the session cookie Secure and sends HSTS, and
``--forwarded-allow-ips`` names the proxy whose ``X-Forwarded-For``/``-Proto`` are believed
(nobody's by default). ``--redis-url-file`` keeps a Redis password out of ``ps``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import os
import socket
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette

from sidequest import connection
from sidequest.config import connect_as_file, default_file
from sidequest.errors import ConfigError
from sidequest.web.app import PASSWORD_ENV, create_app
from sidequest.web.errors import SETTINGS_FILE
from sidequest.web_flags import WEB_HOST, web_parser

DEFAULT_HOST = WEB_HOST
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
START_TIMEOUT = 10.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def build_app(host: str, insecure: bool = False, title: str = "Sidequest",
              https: bool = False) -> Starlette:
    """The app ``sidequest web`` serves on ``host``; ConfigError when that would be unsafe."""
    if os.environ.get(PASSWORD_ENV):
        return create_app(title=title, https=https)
    if is_loopback(host):
        # The loopback names, and the address it was told to listen on (127.0.0.2 is
        # loopback too, and a browser sends it as the Host).
        names = (*LOOPBACK_NAMES, host.strip("[]").lower())
        return create_app(insecure=True, allowed_hosts=names, title=title, https=https)
    if insecure:
        return create_app(insecure=True, title=title, https=https)
    raise ConfigError(
        f"refusing to serve the dashboard on {host} without a login: set"
        f" {PASSWORD_ENV}, or pass --insecure if a proxy in front of it already checks who"
        " may use it"
    )


def main(argv: list[str]) -> int:
    args = web_parser().parse_args(argv)
    # Without -C, the settings file the worker reads without it: the same Redis.
    file, given_url = args.config or default_file(), redis_url_of(args)
    connect_as_file(file, given_url)
    app = build_app(args.host, args.insecure, args.title, https=args.https)
    # Where the outage page says the URL is set: what won here, not the environment.
    if given_url:
        setattr(app.state, SETTINGS_FILE, "--redis-url")
    elif file:
        setattr(app.state, SETTINGS_FILE, file)
    sock = listening(args.host, args.port)  # before the banner: a port in use is said first
    login = "password login" if os.environ.get(PASSWORD_ENV) else "no login"
    print(f"sidequest web: {url_of(args.host, args.port)} ({login}); Redis"
          f" {connection.redacted()}{_shards_note()}; Ctrl-C stops it", flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info",
                            server_header=False, **proxy_options(args.forwarded_allow_ips))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises the Ctrl-C it caught again
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _shards_note() -> str:
    others = connection.shard_names()[1:]
    return f" and shards {', '.join(others)}" if others else ""


def listening(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or a ConfigError saying why not and what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        busy = exc.errno == errno.EADDRINUSE
        raise ConfigError(
            f"cannot listen on {url_of(host, port)}: {exc.strerror or exc}"
            + ("; another program (another sidequest web?) has the port: stop it, or pick"
               " another with --port" if busy else "; check --host and --port")) from None
    sock.listen(2048)
    return sock


def redis_url_of(args: argparse.Namespace) -> str | None:
    """The Redis URL given on the command line or in ``--redis-url-file``, if any."""
    if args.redis_url_file:
        try:
            with open(args.redis_url_file, encoding="utf-8") as file:
                url = file.read().strip()
        except OSError as exc:
            raise ConfigError(f"--redis-url-file {args.redis_url_file}: {exc.strerror}") from exc
        if not url:
            raise ConfigError(f"--redis-url-file {args.redis_url_file}: the file is empty;"
                              " write the Redis URL in it")
        return url
    if args.redis_url and urlsplit(args.redis_url).password is not None:
        print("sidequest web: warning: the Redis password in --redis-url can be read by every"
              " user of this machine (ps); put the URL in SIDEQUEST_REDIS_URL or a file"
              " given to --redis-url-file instead", file=sys.stderr, flush=True)
    return str(args.redis_url) if args.redis_url else None


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def proxy_options(forwarded_allow_ips: str | None) -> dict[str, Any]:
    """uvicorn's options for forwarded headers. uvicorn itself believes ``X-Forwarded-For``
    and ``-Proto`` from 127.0.0.1 by default, so a client on this host (or any request passed
    on by a local proxy that does not overwrite them) could pick its address for the login
    limiter; the dashboard believes them only from the addresses it is given."""
    if not forwarded_allow_ips:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": forwarded_allow_ips}


class BackgroundServer:
    """uvicorn in a daemon thread (it installs no signal handlers there); ``port=0`` picks a
    free port, read back once it listens."""

    def __init__(self, app: Starlette, host: str = DEFAULT_HOST, port: int = 0,
                 forwarded_allow_ips: str | None = None) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                server_header=False, lifespan="off",
                                **proxy_options(forwarded_allow_ips))
        self.server = uvicorn.Server(config)
        self.host = host
        self.port = port
        self._thread = threading.Thread(target=self.server.run, name="sidequest-web",
                                        daemon=True)

    @property
    def url(self) -> str:
        return url_of(self.host, self.port)

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the dashboard could not listen on {self.host}:{self.port}")
            time.sleep(0.02)
        sockets = [s for server in self.server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
