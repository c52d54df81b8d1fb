"""The one place that creates Redis clients, and the Lua scripts they run.

Every client works in bytes (``decode_responses=False``): a payload that is not valid UTF-8
must still be readable so that it can be moved to the dead set instead of crashing a thread.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import os
import threading
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterPipeline
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel

from sidequest import environ, keys, scope, sentinel_watch, url_clients, url_problems, urls
from sidequest import shards as shards_table  # its parameters are named shards here
from sidequest.errors import ConfigError
from sidequest.shards import ShardMap

DEFAULT_URL = "redis://localhost:6379/0"

_lock = threading.Lock()
_url: str | None = None
_options: dict[str, Any] = {}
_client: redis.Redis | None = None
_script_objects: dict[str, Script] = {}

# Sharding (shards.py): the routing table, read from the environment on first use unless
# configure() gave one. The shard this process works on and the one a block of code chose
# (on_shard: a dashboard request, the stats of each) are kept in scope.py.
_map: ShardMap | None = None
_map_read = False
#: True when the table came from configure() or set_shards(), not from the environment: a
#: later configure() that names no shards keeps it (an extension configuring the URL after
#: the app configured its shards must not strand the shards' jobs on the default Redis).
_map_explicit = False
#: True once a home or a chosen shard may differ from the default: only then does client()
#: look them up, so that one Redis costs what it did.
_scoping = False
_shard_clients: dict[str, redis.Redis] = {}  # by URL


def _use_key_names(target: str) -> None:
    # Key names follow the default Redis: tagged on a cluster, Sidekiq's otherwise.
    keys.use_cluster_names(urls.is_cluster(target))


def configure(redis_url: str | None = None, *, shards: Mapping[str, str] | None = None,
              shard_queues: Mapping[str, str] | None = None, **redis_options: Any) -> None:
    """Set where Sidequest finds Redis, for this process.

    Without a call, ``SIDEQUEST_REDIS_URL``, then ``REDIS_URL``, then
    ``redis://localhost:6379/0`` is used. ``redis://``, ``rediss://`` (TLS), passwords and ACL
    users work as in redis-py; ``redis+sentinel://host:port[,host:port]/service[/db]`` reaches
    the master through Sentinel. Extra keyword arguments go to the redis-py client.

    ``shards`` names further Redis servers (name -> URL) and ``shard_queues`` routes queues
    to them (queue -> shard name); other queues stay on ``redis_url``, the ``default`` shard.
    Passing either replaces the routing table; omitting both keeps the table an earlier
    call set (checked again against this call's ``redis_url``), and ``shards={}`` drops it.
    Without a table from a call, ``SIDEQUEST_SHARDS`` and ``SIDEQUEST_SHARD_QUEUES`` are read.
    """
    global _url, _options, _scoping
    if redis_url is not None:
        urls.check_url(redis_url)
    _check_client_options(redis_options)
    # Built before anything changes: a refused table leaves the earlier configuration whole.
    table, explicit = _next_table(shards, shard_queues, _default_for(redis_url))
    with _lock:
        _url = redis_url
        _options = dict(redis_options)
        scope.home, _scoping = scope.DEFAULT, False
        _drop_client()
    _use_key_names(default_url())
    _set_table(table, explicit)


def _next_table(shards: Mapping[str, str] | None, shard_queues: Mapping[str, str] | None,
                default: str) -> tuple[ShardMap | None, bool]:
    """The routing table configure() leaves, and whether it came from code (not the
    environment, which is read again on first use)."""
    if shards is None and shard_queues is None:
        if _map is None or not _map_explicit:
            return None, False
        shards, shard_queues = _map.urls, _map.queues  # kept, but the URL may have changed
    table = shards_table.build(shards, shard_queues, default=default)
    return table, table is not None


#: configure()'s own keywords, for a did-you-mean when one is misspelt.
_OWN = ("redis_url", "shards", "shard_queues")


def _check_client_options(options: Mapping[str, Any]) -> None:
    """Refuse a keyword redis-py would take for nothing or reject only at the first command
    (a misspelt ``configure(redis=...)`` would fail at the first push, inside redis-py)."""
    known = _client_option_names()
    if options.get("single_connection_client"):
        raise ConfigError(
            "sidequest.configure(): single_connection_client is not supported: Sidequest's"
            " threads share one client, which would queue them all on one connection, and"
            " its pushes rely on a pool to be sent once: remove it")
    for name in options:
        if name in known:
            continue
        if name in ("redis", "url", "redis_url", "uri", "host_url"):
            hint = "pass the URL as the first argument: configure('redis://host:6379/0')"
        else:
            close = difflib.get_close_matches(name, [*_OWN, *known], 1)
            hint = (f"did you mean {close[0]!r}?" if close
                    else "extra keyword arguments go to the redis-py client")
        raise ConfigError(f"sidequest.configure(): unknown Redis client option {name!r}; {hint}")


@functools.cache
def _client_option_names() -> frozenset[str]:
    """What redis-py's clients, pools and connections take by name, in the installed version."""
    conn = redis.connection
    takers: list[Any] = [redis.Redis.__init__, redis.RedisCluster.__init__,
                         conn.ConnectionPool.__init__, conn.AbstractConnection.__init__,
                         conn.Connection.__init__, conn.SSLConnection.__init__,
                         conn.UnixDomainSocketConnection.__init__, Sentinel.__init__]
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for taker in takers
                     for p in inspect.signature(taker).parameters.values()
                     if p.kind in named and p.name != "self")


def set_shards(shards: Mapping[str, str] | None, shard_queues: Mapping[str, str] | None,
               source: str = "") -> None:
    """Set the routing table (both None, or both empty: read it from the environment on
    first use)."""
    table = shards_table.build(shards, shard_queues, source, default=default_url())
    _set_table(table, table is not None)


def _set_table(table: ShardMap | None, explicit: bool) -> None:
    global _map, _map_read, _map_explicit
    with _lock:
        _map, _map_read, _map_explicit = table, explicit, explicit
        _drop_shard_clients()


def shard_map() -> ShardMap | None:
    """The routing table, or None with one Redis."""
    global _map, _map_read
    if not _map_read:
        _map, _map_read = shards_table.from_env(os.environ, default=default_url()), True
    return _map


def shard_names() -> list[str]:
    table = shard_map()
    return table.names if table is not None else ["default"]


def shard_url(name: str) -> str:
    """The URL of shard ``name``; a ConfigError naming the shards if there is none."""
    if name == "default":
        return default_url()
    table = shard_map()
    if table is None or name not in table.urls:
        raise ConfigError(f"no shard named {name!r}; the shards are: "
                          f"{', '.join(shard_names())}")
    return table.urls[name]


def use_shard(name: str) -> None:
    """Make shard ``name`` this process's Redis (a worker process serving that shard)."""
    global _scoping
    shard_url(name)
    with _lock:
        if name == scope.home and not _scoping:
            # Already so: keep the client. Closing it would cut the commands another thread
            # has in flight on it (the dashboard that ``sidequest dev`` serves beside the
            # worker), and redis-py does not make that safe.
            return
        scope.home, _scoping = name, name != "default" or _scoping
        _drop_client()


def current_shard() -> str:
    """The shard that ``client()`` talks to here: the chosen one, else the process's."""
    return scope.current()


@contextlib.contextmanager
def on_shard(name: str) -> Iterator[None]:
    """In the block (this thread or task only), ``client()`` is shard ``name``'s client."""
    global _scoping
    shard_url(name)
    if not _scoping and name == scope.home:  # one Redis, or the process's own: no switch
        yield
        return
    _scoping = True
    token = scope.chosen.set(name)
    try:
        yield
    finally:
        scope.chosen.reset(token)


def client_for(name: str) -> redis.Redis:
    """The shared client of shard ``name``, created on first use."""
    if name == "default" and not _scoping:
        return client()
    sentinel_watch.watch.running()  # a shard's Sentinel client, inherited by a fork
    # Keyed by URL: shards on one Redis Cluster (told apart by their keys' tags) share it.
    target = shard_url(name)
    made = _shard_clients.get(target)
    if made is None:
        with _lock:
            made = _shard_clients.get(target)
            if made is None:
                made = _shard_clients[target] = new_client(target=target)
    return made


def client_options() -> dict[str, Any]:
    """The redis-py options the last ``configure()`` passed, for an integration that sets
    the URL from its own settings and must keep them."""
    return dict(_options)


def set_url(redis_url: str) -> None:
    """Point at another Redis, keeping the options given to configure()."""
    global _url
    urls.check_url(redis_url)
    if _map_explicit:  # a table set in code is checked against the new default, as configure()
        _next_table(None, None, redis_url)
    with _lock:
        unchanged = redis_url == default_url()
        _url = redis_url
        if not unchanged:  # the same Redis: keep the client, as use_shard does
            _drop_client()
    _use_key_names(redis_url)


def reset() -> None:
    """Forget the configuration, shards included, and close the shared client (tests,
    forks)."""
    set_shards(None, None)  # first: configure(None) alone keeps a table set in code
    configure(None)


def after_fork() -> None:
    """In a forked child: forget the parent's client (its sockets belong to the parent)
    but keep the configuration."""
    global _client
    _client = None
    _shard_clients.clear()


def url() -> str:
    """The URL of the Redis that ``client()`` talks to."""
    if _scoping:
        return shard_url(current_shard())
    return default_url()


def default_url() -> str:
    """The ordinary Redis URL: the default shard's."""
    return _default_for(_url)


def _default_for(configured: str | None) -> str:
    """The default shard's URL when configure() was given ``configured``."""
    env = os.environ
    return (configured or env.get(environ.REDIS_URL) or env.get(environ.PLAIN_REDIS_URL)
            or DEFAULT_URL)


def redacted(value: str | None = None) -> str:
    """The URL (default: the current one) with any password replaced, safe for logs and pages."""
    return urls.redacted(value if value is not None else url())


def url_problem(exc: BaseException, where: str) -> ConfigError | None:
    """The ConfigError to raise when ``exc`` says the Redis URL itself is wrong (a missing
    database, a URL of the wrong kind for the server), so that no wait would help; None for
    any other error. ``where`` names the Redis in the message (a redacted URL)."""
    return url_problems.diagnose(exc, where, cluster_url=urls.is_cluster(default_url()))


def _drop_client() -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None
    _drop_shard_clients()


def _drop_shard_clients() -> None:
    for made in _shard_clients.values():
        made.close()
    _shard_clients.clear()


def client() -> redis.Redis:
    """The process-wide client with its connection pool, created on first use (with shards:
    the client of the shard chosen by ``on_shard``, else of the process's shard)."""
    global _client
    sentinel_watch.watch.running()  # a forked process's inherited Sentinel client
    if _scoping:
        return client_for(current_shard())
    if _client is None:
        with _lock:
            if _client is None:
                _client = new_client()
    return _client


def new_client(retries: int = 1, *, target: str | None = None,
               **overrides: Any) -> redis.Redis:
    """A new client with its own pool (the worker keeps blocking calls off the shared one).

    ``retries`` is how often a command is resent on a fresh connection after a connection
    error: once by default, so a pooled connection that died with a Redis restart is replaced
    transparently; the worker passes 0 and handles errors itself (a resent fetch could strand
    a job whose reply was lost). A timeout is not retried: a Redis that accepts connections
    but does not answer would otherwise hold a push for four ``socket_timeout``s (connecting
    and its health check each retried), past a web server's request timeout.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": 10.0,
        "health_check_interval": 30,
        "socket_keepalive": True,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries,
                       supported_errors=(redis.ConnectionError,)),
        "retry_on_error": [redis.ConnectionError],
    }
    options.update(_options)
    options.update(overrides)
    target = urls.check_url(target or url())  # the environment's URL is read here, so checked here
    if urls.is_cluster(target) != urls.is_cluster(default_url()):
        raise ConfigError(f"{redacted(target)!r} and the default Redis "
                          f"{redacted(default_url())!r}: use Redis Cluster for all shards or "
                          "for none (key names differ between the two)")
    _use_key_names(default_url())
    if target.startswith("unix://"):
        options.pop("socket_keepalive", None)  # a TCP option: a Unix socket refuses it
    if target.startswith("redis+sentinel://"):
        return url_clients.sentinel(target, options)
    if urls.is_cluster(target):
        return url_clients.cluster(target, options)
    return url_clients.plain(target, options)


def prepare(made: Script, pipe: Any) -> None:
    """Call before queueing ``made`` in ``pipe``. A Redis Cluster pipeline only queues EVALSHA
    (it cannot load a script), and a replica promoted by a failover starts with an empty
    script cache: so on a cluster the script is loaded on every primary first."""
    if isinstance(pipe, ClusterPipeline):
        client().script_load(made.script)


def load_scripts() -> None:
    """Read every Lua script now (a worker starting): its stop must not need to open a file,
    since a job that leaked every file descriptor of the process would make it fail."""
    for entry in resources.files("sidequest").joinpath("lua").iterdir():
        if entry.name.endswith(".lua"):
            script(entry.name[:-len(".lua")])


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


# The environment's URL already decides the key names at import: an application that names
# a key (a limiter, a job set, its own constant) while its modules load, before the first
# client or configure(), gets the names it will use. configure() may still switch them.
_use_key_names(default_url())
