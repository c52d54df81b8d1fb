"""The one place that creates Redis clients, and the Lua scripts they run.

Every client works in bytes (``decode_responses=False``): a payload that is not valid UTF-8
must still be readable so that it can be moved to the dead set instead of crashing a thread.
"""

from __future__ import annotations

import os
import threading
from importlib import resources
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel

from sidequest.errors import ConfigError

DEFAULT_URL = "redis://localhost:6379/0"

_lock = threading.Lock()
_url: str | None = None
_options: dict[str, Any] = {}
_client: redis.Redis | None = None
_script_objects: dict[str, Script] = {}


_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")


def check_url(text: str) -> str:
    """``text`` if it is a Redis URL Sidequest can use, else a ConfigError saying what one
    looks like (``localhost:6379`` alone is the usual slip)."""
    if not isinstance(text, str) or not text.startswith(_SCHEMES):
        raise ConfigError(
            f"{redacted(str(text))!r} is not a Redis URL: write it as redis://HOST:PORT/DB, "
            "e.g. redis://localhost:6379/0 (rediss:// for TLS, redis://:PASSWORD@HOST:PORT/0 "
            "with a password, unix:///path/to/redis.sock, "
            "redis+sentinel://HOST:PORT/SERVICE/DB for Sentinel)")
    try:
        port = urlsplit(text).port if not text.startswith(("unix:", "redis+sentinel:")) else None
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{redacted(text)!r}: the port must be a number from 1 to 65535, "
                          "e.g. redis://localhost:6379/0")
    return text


def configure(redis_url: str | None = None, **redis_options: Any) -> None:
    """Set where Sidequest finds Redis, for this process.

    Without a call, ``SIDEQUEST_REDIS_URL``, then ``REDIS_URL``, then
    ``redis://localhost:6379/0`` is used. ``redis://``, ``rediss://`` (TLS), passwords and ACL
    users work as in redis-py; ``redis+sentinel://host:port[,host:port]/service[/db]`` reaches
    the master through Sentinel. Extra keyword arguments go to the redis-py client.
    """
    global _url, _options
    if redis_url is not None:
        check_url(redis_url)
    with _lock:
        _url = redis_url
        _options = dict(redis_options)
        _drop_client()


def set_url(redis_url: str) -> None:
    """Point at another Redis, keeping the options given to configure()."""
    global _url
    check_url(redis_url)
    with _lock:
        _url = redis_url
        _drop_client()


def reset() -> None:
    """Forget the configuration and close the shared client (tests, forks)."""
    configure(None)


def after_fork() -> None:
    """In a forked child: forget the parent's client (its sockets belong to the parent)
    but keep the configuration."""
    global _client
    _client = None


def url() -> str:
    env = os.environ
    return _url or env.get("SIDEQUEST_REDIS_URL") or env.get("REDIS_URL") or DEFAULT_URL


def redacted(value: str | None = None) -> str:
    """The URL with any password replaced, safe for logs and pages."""
    text = value if value is not None else url()
    parts = urlsplit(text)
    if parts.password is None:
        return text
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _drop_client() -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None


def client() -> redis.Redis:
    """The process-wide client with its connection pool, created on first use."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = new_client()
    return _client


def new_client(retries: int = 1, **overrides: Any) -> redis.Redis:
    """A new client with its own pool (the worker keeps blocking calls off the shared one).

    ``retries`` is how often a command is resent on a fresh connection after a connection
    error: once by default, so a pooled connection that died with a Redis restart is replaced
    transparently; the worker passes 0 and handles errors itself (a resent fetch could strand
    a job whose reply was lost).
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": 10.0,
        "health_check_interval": 30,
        "socket_keepalive": True,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries),
        "retry_on_error": [redis.ConnectionError],
    }
    options.update(_options)
    options.update(overrides)
    target = check_url(url())  # the environment's URL is read here, so checked here
    if target.startswith("unix://"):
        options.pop("socket_keepalive", None)  # a TCP option: a Unix socket refuses it
    if target.startswith("redis+sentinel://"):
        return _sentinel_client(target, options)
    return redis.Redis.from_url(target, **options)


def _sentinel_client(target: str, options: dict[str, Any]) -> redis.Redis:
    parts = urlsplit(target)
    hosts = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.partition(":")
        hosts.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"{redacted(target)}: name the Sentinel service, e.g. /mymaster/0")
    service, db = path[0], int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]  # typed in redis-py 8.2
        hosts, sentinel_kwargs={"password": parts.password}, **options
    )
    master = sentinel.master_for(  # type: ignore[no-untyped-call,unused-ignore]
        service, db=db, password=parts.password, username=parts.username
    )
    return cast(redis.Redis, master)


def script(name: str) -> Script:
    """A Lua script from ``sidequest/lua/<name>.lua``, bound to no client (pass ``client=``).
    Made once per name: a limiter or a batch calls one per job, and building one hashes the
    source."""
    made = _script_objects.get(name)
    if made is None:
        source = resources.files("sidequest").joinpath(f"lua/{name}.lua").read_text("utf-8")
        # Bytes source: the SHA is computed without a client's encoder.
        made = Script(None, source.encode("utf-8"))  # type: ignore[arg-type]
        _script_objects[name] = made
    return made
