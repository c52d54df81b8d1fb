"""Totals, per-day history and queue sizes: the numbers on a dashboard's summary bar."""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Generic, TypeVar, cast

import redis

from sidequest import connection, keys, url_problems
from sidequest.api.lenient import as_int, key_of, replies, shown
from sidequest.api.queues import latency_of
from sidequest.errors import RedisUnavailable
from sidequest.url_clients import CLUSTER_UNAVAILABLE

T = TypeVar("T")
#: History reads at most this many days (an MGET per request; Sidekiq's CVE-2022-23837).
MAX_DAYS = 1825
#: The Redis INFO fields a dashboard shows; nothing else (INFO also names files and hosts).
REDIS_INFO_FIELDS = ("redis_version", "uptime_in_days", "connected_clients",
                     "used_memory_human", "used_memory_peak_human", "used_memory",
                     "maxmemory", "maxmemory_human", "maxmemory_policy", "aof_enabled")
#: Memory use, of maxmemory, past which the dashboard warns: a full Redis refuses pushes.
MEMORY_WARNING = 0.9


def _counters(pipe: Any) -> None:
    """Queue the summary counters on ``pipe``: processed, failed, scheduled, retries, dead,
    processes, and the oldest job of the default queue (for its latency)."""
    pipe.get(keys.STAT_PROCESSED)
    pipe.get(keys.STAT_FAILED)
    pipe.zcard(keys.SCHEDULE)
    pipe.zcard(keys.RETRY)
    pipe.zcard(keys.DEAD)
    pipe.scard(keys.PROCESSES)
    pipe.lindex(keys.queue("default"), -1)


class Stats:
    """A snapshot taken when created, in two round trips whatever the data size (plus one
    per process to sum busy counts, as Sidekiq does)."""

    def __init__(self) -> None:
        client = connection.client()
        pipe = client.pipeline(transaction=False)
        _counters(pipe)
        pipe.smembers(keys.QUEUES)
        pipe.smembers(keys.PROCESSES)
        (processed, failed, scheduled, retries, dead, procs, oldest, queue_names,
         processes) = replies(pipe)  # a key of the wrong type reads as unknown
        self.scheduled_size, self.retry_size = as_int(scheduled), as_int(retries)
        self.dead_size, self.processes_size = as_int(dead), as_int(procs)
        self.processed = as_int(processed)
        self.failed = as_int(failed)
        self.default_queue_latency = latency_of(oldest)
        # Names as stored: one that is not UTF-8 (another program's) still names its key.
        names = sorted(queue_names or ())
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(key_of(keys.queue, name))
        for identity in processes or ():
            pipe.hget(key_of(keys.process, identity), "busy")
        pipe.get(keys.STAT_EXPIRED)
        pipe.get(keys.STAT_OVERLIMIT)
        *sizes, expired, overlimit = replies(pipe)
        #: Jobs dropped unrun because they were fetched after their ``expires_at``.
        self.expired = as_int(expired)
        #: Jobs put back in the schedule because a rate limiter was full (not failures).
        self.overlimit = as_int(overlimit)
        # Largest first, as Sidekiq orders them; names break ties so the order is stable.
        pairs = sorted(zip(names, (as_int(s) for s in sizes), strict=False), key=lambda p: -p[1])
        #: Printable names (odd bytes written out as ``\xff``), each queue's size.
        self.queues: dict[str, int] = {shown(name): size for name, size in pairs}
        self.enqueued = sum(size for _, size in pairs)
        self.workers_size = sum(as_int(b) for b in sizes[len(names):])

    def as_dict(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "failed": self.failed,
            "busy": self.workers_size,
            "processes": self.processes_size,
            "enqueued": self.enqueued,
            "scheduled": self.scheduled_size,
            "retries": self.retry_size,
            "dead": self.dead_size,
            "expired": self.expired,
            "overlimit": self.overlimit,
            "default_latency": self.default_queue_latency,
        }

    @staticmethod
    def reset(*which: str) -> None:
        """Set the all-time totals ("processed", "failed", or both) back to 0."""
        names = which or ("processed", "failed")
        totals = {"processed": keys.STAT_PROCESSED, "failed": keys.STAT_FAILED}
        unknown = [name for name in names if name not in totals]
        if unknown:
            raise ValueError(f"Stats.reset: no total named {', '.join(map(repr, unknown))}; "
                             "use 'processed' and/or 'failed'")
        connection.client().mset({totals[name]: 0 for name in names})

    @staticmethod
    def history(days: int = 30, start: date | None = None) -> dict[str, dict[str, int]]:
        """Daily processed and failed counts, newest day first, ``days`` clamped to 1..1825."""
        days = max(1, min(int(days), MAX_DAYS))
        first = start or datetime.now(timezone.utc).date()
        dates = [(first - timedelta(days=i)).isoformat() for i in range(days)]
        out: dict[str, dict[str, int]] = {}
        for kind in ("processed", "failed"):
            values = connection.client().mget([keys.stat_daily(kind, d) for d in dates])
            out[kind] = {d: as_int(v) for d, v in zip(dates, cast(Any, values), strict=True)}
        return out


def live_stats() -> Stats:
    """A Stats snapshot whose busy and processes count live processes only, as the dashboard's
    Totals do, rather than every listed one as Sidekiq's stats do: a killed process is left
    out at once, not a minute later when its entry is pruned."""
    stats, live = Stats(), Totals.read()
    stats.workers_size, stats.processes_size = live.busy, live.processes
    return stats


@dataclass(frozen=True)
class Totals:
    """The summary bar's numbers in two round trips of ten commands, whatever the number of
    queues, processes or jobs: what a dashboard polls every few seconds. Busy and processes
    count live processes only: a dead one still listed until a reaper runs is left out."""

    processed: int
    failed: int
    busy: int
    processes: int
    enqueued: int
    scheduled: int
    retries: int
    dead: int
    default_latency: float

    @classmethod
    def read(cls) -> Totals:
        client = connection.client()
        pipe = client.pipeline(transaction=False)
        _counters(pipe)
        pipe.smembers(keys.QUEUES)
        pipe.smembers(keys.PROCESSES)
        pipe.smembers(keys.SQ_PROCESSES)
        processed, failed, scheduled, retries, dead, _, oldest, names, identities, ours = (
            replies(pipe)  # a key of the wrong type reads as unknown, not an error
        )
        names, identities, ours = names or set(), identities or set(), ours or set()
        # The script is handed every key it reads (servers that check declared keys insist),
        # named from the members' bytes: a name that is not UTF-8 still names its key.
        queue_keys = [key_of(keys.queue, name) for name in names]
        leased = [i for i in identities if i in ours]
        others = [key_of(keys.process, i) for i in identities if i not in ours]
        sums = connection.script("totals")(
            keys=[*queue_keys, *(key_of(keys.process, i) for i in leased),
                  *(key_of(keys.lease, i) for i in leased), *others],
            args=[len(queue_keys), len(leased)], client=client)
        return cls(processed=as_int(processed), failed=as_int(failed), busy=as_int(sums[1]),
                   processes=as_int(sums[2]), enqueued=as_int(sums[0]),
                   scheduled=as_int(scheduled), retries=as_int(retries), dead=as_int(dead),
                   default_latency=latency_of(oldest))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def redis_info() -> dict[str, str]:
    """Version, uptime, connections and memory of the Redis server: the fields of
    ``REDIS_INFO_FIELDS`` only, so no host names or paths reach a page."""
    client: Any = connection.client()
    if hasattr(client, "get_node_from_key"):  # Redis Cluster: the primary holding our keys
        info = client.info(target_nodes=client.get_node_from_key(keys.QUEUES))
    else:
        info = client.info()
    return {name: str(info[name]) for name in REDIS_INFO_FIELDS if name in info}


def redis_risks(info: dict[str, str]) -> dict[str, str]:
    """What in ``redis_info`` puts jobs at risk, field by field, for the dashboard to say:
    memory near maxmemory (pushes are refused once full), an eviction policy (keys, queues
    included, are deleted when full), no append-only file (a restart loses what was written
    since the last snapshot)."""
    risks: dict[str, str] = {}
    used, limit = as_int(info.get("used_memory")), as_int(info.get("maxmemory"))
    if limit and used >= MEMORY_WARNING * limit:
        risks["memory"] = (f"{used / limit:.0%} of maxmemory: once full, Redis refuses pushes;"
                           " raise maxmemory or free memory")
    policy = info.get("maxmemory_policy", "noeviction")
    if policy.startswith("volatile"):
        risks["policy"] = ("deletes keys that expire when memory runs out, leases and unique"
                           " locks among them: set maxmemory-policy noeviction")
    elif policy != "noeviction":
        risks["policy"] = ("deletes keys when memory runs out, queued jobs included: set"
                           " maxmemory-policy noeviction")
    if info.get("aof_enabled") == "0":
        risks["aof"] = ("no append-only file: a restart loses the jobs written since the last"
                        " snapshot, if any")
    return risks


#: What a shard's read raises when its Redis cannot be reached (refused, timed out, a
#: wrong password, still loading, a cluster down), as opposed to a command it refused or a
#: bug.
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, RedisUnavailable,
    *CLUSTER_UNAVAILABLE)


class ShardUnreachable(redis.ConnectionError, RedisUnavailable):
    """The Redis of shard ``shard`` could not be reached: a RedisUnavailable that names the
    shard and its URL (``where``, without the password); ``reason`` is the error's own text.
    It is also the ``redis.ConnectionError`` that these reads raised before, so code that
    catches that still does (redis-py's class first: its ``__init__`` sets what its
    instrumentation reads, then hands the message on to RedisUnavailable's)."""

    def __init__(self, shard: str, error: Exception, advice: str) -> None:
        self.shard = shard
        self.where = connection.redacted(connection.shard_url(shard))
        # Without its final period: the messages that quote it go on after it.
        self.reason = (url_problems.readable(error).rstrip(string.whitespace + ".")
                       or type(error).__name__)
        super().__init__(f"could not reach {describe(shard)} ({self.reason}); {advice}")


def first_found(read: Callable[[str], T], found: Callable[[T], bool], missing: T,
                advice: Callable[[list[str]], str], shards: list[str] | None = None) -> T:
    """``read(shard)`` on the current shard, then on the others (or on ``shards``), until
    ``found`` says one holds the thing (a jid or a bid does not say which shard has it). A
    shard that is down is passed over; nothing found with one down raises ShardUnreachable
    (``advice(down)`` says what to do), since "not there" would be a guess."""
    here = connection.current_shard()
    down: dict[str, Exception] = {}
    for shard in shards or [here, *(n for n in connection.shard_names() if n != here)]:
        try:
            answer = read(shard)
        except UNREACHABLE_ERRORS as exc:
            down[shard] = exc
            continue
        if found(answer):
            return answer
    if down:
        shard, error = next(iter(down.items()))
        raise ShardUnreachable(shard, error, advice(list(down))) from error
    return missing


def describe(shard: str) -> str:
    """``shard 'mail' at redis://host:6379/0``, or only the URL with one Redis (its one shard
    has a name nobody wrote)."""
    where = connection.redacted(connection.shard_url(shard))
    return f"shard {shard!r} at {where}" if len(connection.shard_names()) > 1 else where


@dataclass(frozen=True)
class ShardReads(Generic[T]):
    """What ``each_reachable_shard`` read: ``values`` of the shards that answered, in shard
    order, and ``down``, the error of each shard that could not be reached."""

    values: dict[str, T]
    down: dict[str, ShardUnreachable]


def each_reachable_shard(read: Callable[[], T]) -> ShardReads[T]:
    """``read()`` on every shard that answers: a shard that is down is left out of ``values``
    and named in ``down``, so a caller can show the others and say which one is missing.
    Errors other than "cannot reach it" (a refused command, a bug) are raised."""
    values: dict[str, T] = {}
    down: dict[str, ShardUnreachable] = {}
    for name in connection.shard_names():
        try:
            values[name] = _read_on(name, read, "start it or correct its URL; the other "
                                    "shards were read without it")
        except ShardUnreachable as exc:
            down[name] = exc
    return ShardReads(values, down)


def each_shard(read: Callable[[], T]) -> dict[str, T]:
    """``read()`` on every shard (connection.py's routing table), the default first: with one
    Redis, ``{"default": read()}``. A shard that cannot be reached raises ShardUnreachable
    naming it (a sum must not leave a shard out unnoticed); ``each_reachable_shard`` reads
    the others without it."""
    advice = ("start it or correct its URL, or use each_reachable_shard() to read the other "
              "shards without it")
    return {name: _read_on(name, read, advice) for name in connection.shard_names()}


def _read_on(name: str, read: Callable[[], T], advice: str) -> T:
    with connection.on_shard(name):
        try:
            return read()
        except ShardUnreachable:
            raise  # already names the shard it could not reach
        except UNREACHABLE_ERRORS as exc:
            raise ShardUnreachable(name, exc, advice) from exc


def summed(rows: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> dict[str, Any]:
    """The sum of several shards' rows: what ``each_shard`` read (``summed(each_shard(Stats))``),
    or their ``as_dict()`` rows; a latency is the largest, not a sum."""
    out: dict[str, Any] = {}
    for row in _rows(rows):
        for key, value in row.items():
            if key.endswith("latency"):
                out[key] = max(out.get(key, 0.0), value)
            elif isinstance(value, (int, float)):
                out[key] = out.get(key, 0) + value
    return out


def _rows(given: Iterable[Any] | Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """Each shard's row: ``each_shard``'s answer is keyed by shard name, and a snapshot
    (Stats, Totals) gives its ``as_dict()``."""
    for item in given.values() if isinstance(given, Mapping) else given:
        row = item.as_dict() if hasattr(item, "as_dict") else item
        if not isinstance(row, Mapping):
            raise TypeError(f"summed() adds shards' rows: give it what each_shard() returns"
                            f" (summed(each_shard(Stats))) or as_dict() rows; got"
                            f" {type(item).__name__} {item!r}")
        yield row
