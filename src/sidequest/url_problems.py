"""Redis errors that mean the URL itself is wrong, so that no wait or retry would help, and
the ConfigError that says so: a database number the server lacks, a password missing or
refused, a Redis Cluster node behind a plain URL, a plain Redis behind a cluster URL. Also
``readable()``: an error's text as a message can quote it."""

from __future__ import annotations

import re

import redis
from redis.exceptions import ResponseError
from redis.sentinel import MasterNotFoundError

from sidequest.errors import ConfigError


def diagnose(exc: BaseException, where: str, *, cluster_url: bool) -> ConfigError | None:
    """The ConfigError for ``exc``, or None when it is not a URL problem. ``where`` names the
    Redis (a redacted URL); ``cluster_url``: whether the configured URL is a cluster's."""
    problem = (missing_database(exc, where) or wrong_credentials(exc, where)
               or not_redis(exc, where))
    if problem is None and not cluster_url:
        problem = cluster_behind_plain_url(exc, where)
    return problem or plain_behind_cluster_url(exc, where)


def missing_database(exc: BaseException, where: str) -> ConfigError | None:
    if not isinstance(exc, redis.ResponseError) or "DB index is out of range" not in str(exc):
        return None
    return ConfigError(f"the Redis URL {where} names a database this server does not have"
                       " (a server has 16 by default, /0 to /15; redis.conf's databases"
                       " setting changes that): use a database number the server has")


def not_redis(exc: BaseException, where: str) -> ConfigError | None:
    """Something else listens there (a web server, a database): its first bytes are no Redis
    reply, and no wait would change that."""
    if not isinstance(exc, redis.exceptions.InvalidResponse):
        return None
    return ConfigError(f"the server at {where} does not answer as Redis does ({exc}): check the"
                       " URL's host and port (Redis listens on 6379 unless told otherwise)")


def wrong_credentials(exc: BaseException | None, where: str) -> ConfigError | None:
    """A password missing from the URL, or refused: waiting would not help."""
    if not isinstance(exc, redis.AuthenticationError):
        return None
    form = ("redis+cluster://:PASSWORD@HOST:PORT,HOST:PORT, or redis+cluster://USER:PASSWORD@"
            "HOST:PORT for an ACL user" if "+cluster://" in where else
            "redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@HOST:PORT/DB for an ACL"
            " user")
    form += "; quote characters such as @ / : # as %40 %2F %3A %23"
    if "invalid username-password" in str(exc) or "WRONGPASS" in str(exc):
        return ConfigError(f"Redis at {where} refused the user name or password in the URL"
                           f" ({str(exc).rstrip('.')}): check them; the URL's form is {form}")
    return ConfigError(f"Redis at {where} requires a password, and the URL gives none: put it"
                       f" in the URL, as {form}")


#: What only a Redis Cluster node answers a plain client: the key's slot is served by another
#: node (MOVED, or ASK while it moves), or one transaction's keys lie in several slots.
_CLUSTER_REPLIES = (redis.exceptions.AskError, redis.exceptions.ClusterCrossSlotError)
_REPLY_WORDS = {redis.exceptions.MovedError: "MOVED", redis.exceptions.AskError: "ASK",
                redis.exceptions.ClusterCrossSlotError: "CROSSSLOT"}


def cluster_behind_plain_url(exc: BaseException, where: str) -> ConfigError | None:
    """For a plain client only: a cluster client follows MOVED and ASK itself."""
    if not isinstance(exc, _CLUSTER_REPLIES):
        return None
    return cluster_node(where, f"it answered {_REPLY_WORDS.get(type(exc), 'a redirect')}")


def cluster_node(where: str, sign: str) -> ConfigError:
    """A Redis Cluster node behind a plain URL; ``sign`` is how that showed."""
    return ConfigError(f"Redis at {where} is a Redis Cluster node ({sign}), "
                       "which a plain redis:// URL cannot use: "
                       "use a redis+cluster:// URL naming one or more of its nodes, e.g. "
                       "redis+cluster://HOST:PORT,HOST:PORT (rediss+cluster:// for TLS, and "
                       "no /DB: a cluster has only database 0)")


def plain_behind_cluster_url(exc: BaseException, where: str) -> ConfigError | None:
    # redis-py's words when a startup node refuses CLUSTER SLOTS (raised as a
    # RedisClusterException, which is no RedisError).
    if not isinstance(exc, redis.exceptions.RedisClusterException) or (
            "Cluster mode is not enabled" not in str(exc)):
        return None
    return ConfigError(f"Redis at {where} is not a Redis Cluster node (cluster mode is not "
                       "enabled on it), so a redis+cluster:// URL cannot use it: use a "
                       "redis:// URL for a single Redis server, e.g. redis://HOST:PORT/0 "
                       "(rediss:// for TLS)")


#: How redis-py writes a Sentinel client into MasterNotFoundError's text: about 1 KB of its
#: connection pool's settings, of which a reader needs the address.
_SENTINEL_REPR = re.compile(r"<redis\.client\.Redis\(.*?host=([^,>]+),port=(\d+).*?\)>\)>\)>")


def readable(exc: BaseException) -> str:
    """``exc``'s text, with each Sentinel client that redis-py's MasterNotFoundError quotes
    written as its address, and what to check when no Sentinel named the master."""
    text = str(exc)
    if isinstance(exc, ResponseError) and "unknown command 'sentinel'" in text.lower():
        # What some redis-py versions raise, instead of MasterNotFoundError, when a
        # redis+sentinel:// URL names a plain Redis.
        text = f"the server at the URL is a Redis, not a Sentinel ({text.rstrip('. ')})"
    elif isinstance(exc, MasterNotFoundError):
        text = _SENTINEL_REPR.sub(lambda found: f"Sentinel {found[1]}:{found[2]}", text)
    elif _slot_moving(exc, text):
        return (f"{text.rstrip('. ')}: a Redis Cluster slot moved or is being migrated (a"
                " reshard, a failover); retried until the cluster settles")
    else:
        return text
    return (f"{text.rstrip('.')}. During a failover this passes within seconds; if it lasts,"
            " check that the URL names Sentinels (port 26379 by default), not Redis itself,"
            " and the service name their `sentinel monitor` line gives")


#: A redirect as redis-py words it without its MOVED/ASK: "<slot> <host>:<port>", alone or
#: as the end of a pipeline's "Command # 1 (...) caused error: ...".
_REDIRECT = re.compile(r"(^|caused error: )\d+ \S+:\d+$")


def _slot_moving(exc: BaseException, text: str) -> bool:
    """A Redis Cluster redirect (MOVED or ASK), or redis-py giving up after too many of them
    ("TTL exhausted"): redis-py's text names neither the slot's move nor what happens next."""
    if isinstance(exc, redis.exceptions.AskError):  # MovedError too
        return True
    if isinstance(exc, redis.exceptions.ClusterError) and "TTL exhausted" in text:
        return True
    return isinstance(exc, ResponseError) and bool(_REDIRECT.search(text.strip()))


#: Refusals of every write while a Redis cannot accept them for now: too few replicas in
#: reach (``min-replicas-to-write``, most often during a Sentinel failover), or a replica
#: that lost its primary (``replica-serve-stale-data no``). Nothing was written.
_REFUSED_FOR_NOW = ("NOREPLICAS", "MASTERDOWN")


def refused_for_now(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing every write for a while (see _REFUSED_FOR_NOW),
    also as redis-py words it for a pipeline ("Command # 1 (...) caused error: ...")."""
    if isinstance(exc, getattr(redis.exceptions, "MasterDownError", ())):
        return True  # redis-py takes "MASTERDOWN" off its message
    if not isinstance(exc, ResponseError):
        return False
    text = str(exc)
    # Also inside a script's error, as Redis 6.2 words it ("Error running script ...
    # -NOREPLICAS Not enough good replicas to write.").
    return text.startswith(_REFUSED_FOR_NOW) or any(
        f"caused error: {word}" in text or f"-{word}" in text for word in _REFUSED_FOR_NOW)
