"""Redis URLs: which ones Sidequest accepts, what a bad one is told, and how one is shown
without its password. Pure text handling, no connection: the shard table checks its URLs
with it before any client exists.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from sidequest.errors import ConfigError

_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://",
            "rediss+cluster://")
_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
#: Names of this machine that reach one server on one port.
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORT = 6379


def is_cluster(text: str) -> bool:
    """True for a Redis Cluster URL (``redis+cluster://`` or ``rediss+cluster://``)."""
    return text.startswith(_CLUSTER_SCHEMES)


def check_url(text: str) -> str:
    """``text`` if it is a Redis URL Sidequest can use, else a ConfigError saying what one
    looks like (``localhost:6379`` alone is the usual slip)."""
    if not isinstance(text, str) or not text.startswith(_SCHEMES):
        raise ConfigError(
            f"{redacted(str(text))!r} is not a Redis URL: write it as redis://HOST:PORT/DB, "
            "e.g. redis://localhost:6379/0 (rediss:// for TLS, redis://:PASSWORD@HOST:PORT/0 "
            "with a password, unix:///path/to/redis.sock, "
            "redis+sentinel://HOST:PORT/SERVICE/DB for Sentinel, "
            "redis+cluster://HOST:PORT[,HOST:PORT] for Redis Cluster)")
    if is_cluster(text):
        return _check_cluster_url(text)
    try:
        port = urlsplit(text).port if not text.startswith(("unix:", "redis+sentinel:")) else None
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{redacted(text)!r}: the port must be a number from 1 to 65535, "
                          "e.g. redis://localhost:6379/0")
    if text.startswith(("redis://", "rediss://")):
        _check_database(text)
    return text


def _check_database(text: str) -> None:
    """redis-py reads a database that is not a number (``/abc``, ``/db1``) as database 0,
    without a word: an app and a worker would then share db 0 while the URLs differ."""
    parts = urlsplit(text)
    query = parse_qs(parts.query).get("db")  # redis-py: ?db= wins over the path
    db = query[0] if query else unquote(parts.path).strip("/")
    if db and not db.isdigit():
        raise ConfigError(f"{redacted(text)!r}: the database must be a number, got {db!r};"
                          " write the URL as redis://HOST:PORT/DB, e.g. redis://localhost:6379/3"
                          " (a server has databases 0 to 15 by default)")


def _check_cluster_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.path.strip("/"):
        raise ConfigError(f"{redacted(text)!r}: a Redis Cluster has only database 0, so a "
                          "cluster URL takes no /DB: write redis+cluster://HOST:PORT[,HOST:PORT]")
    for host, port in cluster_nodes(text):
        if not host or not 0 < port < 65536:
            raise ConfigError(f"{redacted(text)!r}: name each node as HOST:PORT with a port "
                              "from 1 to 65535, e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
        if not _HOST.fullmatch(host):
            # Looked up, it fails as a name nobody knows: an outage a worker waited out.
            raise ConfigError(f"{redacted(text)!r}: {host!r} is no host name or address:"
                              " separate the nodes with commas, e.g."
                              " redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
    return text


#: A host name (an international one too), an IPv4 address, or an IPv6 one in brackets (with
#: a zone, "%eth0" or "%25eth0"; interface names may hold "-" and "_": "%br-lan").
_HOST = re.compile(r"\[[0-9A-Za-z:.%_-]+\]|[\w.-]+")


def cluster_nodes(text: str) -> list[tuple[str, int]]:
    """The startup nodes of a cluster URL (port 6379 when a node names none; -1 if bad)."""
    nodes = []
    for item in urlsplit(text).netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        nodes.append((host, int(port) if port.isdigit() else (6379 if not port else -1)))
    return nodes


def server_of(text: str) -> str:
    """Which Redis server and database a URL reaches, the same text for two spellings of
    one: host lowercased, localhost, 127.0.0.1 and ::1 as one host, port 6379 and database 0
    when not named. TLS, user and password are left out: they do not change the server.
    Host names are not resolved, so a name and its address still differ."""
    parts = urlsplit(text)
    query = parse_qs(parts.query).get("db")
    if text.startswith("unix:"):
        return f"unix:{parts.path}/{_db(query[0] if query else '')}"
    sentinel = text.startswith("redis+sentinel:")
    nodes = ",".join(sorted(f"{_host(host)}:{port}" for host, port
                            in _nodes(parts.netloc, 26379 if sentinel else DEFAULT_PORT)))
    if sentinel:  # the service names the server: /SERVICE/DB
        service, db = ([part for part in parts.path.split("/") if part] + ["", ""])[:2]
        return f"sentinel:{nodes}/{service}/{_db(db)}"
    db = query[0] if query else parts.path.strip("/")  # redis-py: ?db= wins over the path
    return f"{'cluster' if is_cluster(text) else 'tcp'}:{nodes}/{_db(db)}"


def _nodes(netloc: str, default_port: int) -> list[tuple[str, int | str]]:
    out: list[tuple[str, int | str]] = []
    for item in netloc.rsplit("@", 1)[-1].split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or host.endswith(":") or "]" in port:  # no port, or a bare IPv6 host
            host, port = item.strip(), ""
        out.append((host, int(port) if port.isdigit() else port or default_port))
    return out


def _host(host: str) -> str:
    host = host.strip("[]").lower()
    return "localhost" if host in _LOOPBACK else host


def _db(text: str) -> str:
    return str(int(text)) if text.isdigit() else text or "0"


#: A password given in the query (redis-py's form for a unix socket: ``?password=...``).
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


def redacted(text: str) -> str:
    """``text`` with any password replaced, safe for logs and pages: the one before the
    host, and one given as ``?password=``."""
    head, mark, query = text.partition("?")
    if mark:
        query = _QUERY_PASSWORD.sub(r"\1***", mark + query)[1:]
    parts = urlsplit(head)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        head = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    return head + mark + query
