"""Every Redis key Sidequest reads or writes, defined once.

docs/redis-layout.md describes each key, who writes and reads it, and the job payload; a test
keeps that page in step with this module.

Sidekiq's keys (shared with Ruby processes):

    queues                      SET of queue names
    queue:<name>                LIST of job JSON; LPUSH in, the right end is the oldest
    schedule, retry, dead       ZSET of job JSON; score = run-at / next retry / death (float s)
    processes                   SET of process identities
    <identity>                  HASH: info, busy, beat, quiet, rss, rtt_us, concurrency
    <identity>:work             HASH tid -> {"queue", "payload", "run_at"} (Sidekiq >= 6.4.2)
    <identity>:workers          the same hash under Sidekiq 6.4.1's name
    <identity>-signals          LIST of TSTP / TERM / TTIN
    stat:processed, stat:failed and stat:<kind>:YYYY-MM-DD (UTC) counters

Sidequest's own keys all start with ``sq:`` so that Sidekiq never trips over them:

    sq:processes                SET of identities that may own an in-progress list
    sq:lease:<identity>         STRING with a TTL; present while the process is alive
    sq:inprogress:<identity>    LIST of raw payloads fetched by that process and not yet acked
    sq:deaths:<jid>             STRING count of process deaths while the job was in flight
    sq:poison                   LIST of payloads found poisonous by a reaper, bound for `dead`
    sq:quarantine               LIST of suspects: jobs in flight at max_deaths - 1 deaths, run
                                one at a time, alone in a process, so a crash blames only them
    sq:quarantine:lock          STRING: identity of the one process running suspects now
    sq:reaper                   STRING lock so only one process reaps at a time
    sq:metrics:1m:<YYYYMMDDHHMM>   HASH per UTC minute: <class>|p (runs), <class>|f (failures),
                                   <class>|ms (milliseconds of successful runs); TTL 8 h
    sq:metrics:10m:<YYYYMMDDHHM>   the same per 10 minutes (the minute's last digit dropped);
                                   TTL 3 days
    sq:metrics:hist:<YYYYMMDDHHM>  HASH per 10 minutes: <class>|<bucket> successful runs by
                                   execution time (bucket bounds in sidequest.metrics); TTL 3 days
    sq:web:session:<sid>        STRING per logged-in dashboard session; TTL its lifetime, and
                                deleted at logout (the signed cookie is worthless without it)
    sq:web:login                STRING: when the next login attempt may be checked, shared by
                                every dashboard process (float s); TTL a few minutes
    sq:web:login:<address>      STRING count of recent failed logins from one client address
                                (an IPv6 /64); TTL 15 minutes from the last failure
    sq:unique:<digest>          STRING: jid of the unique job holding this identity (class,
                                queue, arguments, run time); TTL unique_for (+ the wait of a
                                scheduled job)
    sq:stat:expired             STRING count of jobs dropped unrun because their expires_at
                                had passed when they were fetched
    sq:limiter:<name>           a limiter's state: ZSET token -> expiry (concurrent), HASH
                                w, c (bucket), ZSET call -> time (window); expires when idle
    sq:limiter:<name>:over:<n>  STRING count of jobs rescheduled by this limiter in the n-th
                                ten minutes since the epoch; TTL 70 minutes
    sq:limiters                 ZSET "<kind>|<limit>|<interval>|<name>" -> last use (ms), the
                                limiters used in the last hour (the newest 10,000), for the
                                dashboard; expires an hour after the last acquire
    sq:stat:overlimit           STRING count of jobs rescheduled because a limiter was full
    sq:status:<jid>             HASH state, progress, message, result, updated_at of a job whose
                                class stores results; TTL result_ttl after its last change
    sq:cleared:<name>:<token>   LIST or ZSET: a cleared queue's (or schedule's, retry set's)
                                jobs while the API records what they leave behind (batches,
                                statuses, unique locks); TTL 1 hour
    sq:batch:<bid>              HASH bid, description, created, parent, total, sealed,
                                on_success / on_complete (callback payloads), complete_at,
                                success_at; with sq:batch:<bid>:pending, :ran, :failed (SETs of
                                member jids, or "b:<bid>" for child batches); TTL 30 days, 3 days
                                after the batch's success
    sq:batches                  ZSET bid -> created (the last 30 days), for the dashboard
    sq:cancelled                ZSET jid -> when it was cancelled (epoch s); entries older than
                                30 days are trimmed at each cancel
    sq:dead_limits              HASH max_jobs, timeout (s): the dead_max_jobs and dead_timeout
                                of the last worker to start, by which the dashboard and the
                                API trim ``dead`` (beside it: one per shard, in its slot)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidequest import scope

QUEUES = "queues"
SCHEDULE = "schedule"
RETRY = "retry"
DEAD = "dead"
PROCESSES = "processes"
#: Set (NX, 60 s) by whoever prunes dead entries from ``processes``: once a minute at most.
PROCESS_CLEANUP = "process_cleanup"
STAT_PROCESSED = "stat:processed"
STAT_FAILED = "stat:failed"

SQ_PROCESSES = "sq:processes"
POISON = "sq:poison"
QUARANTINE = "sq:quarantine"
QUARANTINE_LOCK = "sq:quarantine:lock"
REAPER_LOCK = "sq:reaper"

QUEUE_PREFIX = "queue:"
UNIQUE_PREFIX = "sq:unique:"
STAT_EXPIRED = "sq:stat:expired"
LIMITERS = "sq:limiters"
CANCELLED = "sq:cancelled"
BATCHES = "sq:batches"
STAT_OVERLIMIT = "sq:stat:overlimit"
#: Tagged as ``dead`` is (not ON_DEFAULT_SHARD): each shard's limits sit beside its dead set.
DEAD_LIMITS = "sq:dead_limits"


def queue(name: str) -> str:
    return _tag() + _NAMES["QUEUE_PREFIX"] + name


def limiter(name: str) -> str:
    return _default_tag() + f"sq:limiter:{name}"


#: Seconds of one count of a limiter's reschedules; the last hour is the latest six.
OVER_SPAN = 600


def limiter_over(name: str, span: int | str) -> str:
    """The count of ``name``'s reschedules in ten minutes: the ``span``-th since the epoch
    (``over_span``)."""
    return _default_tag() + f"sq:limiter:{name}:over:{span}"


def over_span(at: float) -> int:
    """The ten minutes that hold ``at`` (Unix seconds), as ``limiter_over`` numbers them."""
    return int(at // OVER_SPAN)


def batch(bid: str) -> str:
    return _tag() + f"sq:batch:{bid}"


def batch_part(bid: str, part: str) -> str:
    """``part`` is "pending", "ran" or "failed"."""
    return _tag() + f"sq:batch:{bid}:{part}"


def status(jid: str) -> str:
    return _tag() + f"sq:status:{jid}"


def cleared(what: str, token: str) -> str:
    """A queue's list (``what`` its name) or the schedule or retry set while its clearing
    records what its jobs leave behind (its shard's tag, as theirs: renamed in one slot)."""
    return _tag() + f"sq:cleared:{what}:{token}"


def unique_lock(digest: str) -> str:
    return _tag() + _NAMES["UNIQUE_PREFIX"] + digest


def stat_daily(kind: str, date: str) -> str:
    """``kind`` is "processed" or "failed"; ``date`` is a UTC ``YYYY-MM-DD``."""
    return _tag() + f"stat:{kind}:{date}"


def process(identity: str) -> str:
    """A process's hash; ``identity`` is its member of ``processes`` (untagged)."""
    return _tag() + identity


def work(identity: str) -> str:
    return process(identity) + ":work"


def workers_legacy(identity: str) -> str:
    return process(identity) + ":workers"


def signals(identity: str) -> str:
    return process(identity) + "-signals"


def lease(identity: str) -> str:
    return _tag() + "sq:lease:" + identity


def inprogress(identity: str) -> str:
    return _tag() + "sq:inprogress:" + identity


def deaths(jid: str) -> str:
    return _tag() + "sq:deaths:" + jid


def metrics_minute(stamp: str) -> str:
    """``stamp`` is the UTC minute as ``YYYYMMDDHHMM``."""
    return _tag() + "sq:metrics:1m:" + stamp


def metrics_ten_minutes(stamp: str) -> str:
    """``stamp`` is the UTC 10-minute slot as ``YYYYMMDDHHM`` (a minute stamp minus its last
    digit)."""
    return _tag() + "sq:metrics:10m:" + stamp


def metrics_histogram(stamp: str) -> str:
    """Per 10-minute slot, like :func:`metrics_ten_minutes`."""
    return _tag() + "sq:metrics:hist:" + stamp


WEB_LOGIN_SLOT = "sq:web:login"


def web_session(sid: str) -> str:
    """A logged-in dashboard session; ``sid`` is random, made at login."""
    return _default_tag() + "sq:web:session:" + sid


def web_login_failures(address: str) -> str:
    return _default_tag() + "sq:web:login:" + address


def web_login_next(address: str) -> str:
    """When a client address that failed too often may next have a password checked."""
    return _default_tag() + "sq:web:login-next:" + address


# Periodic jobs (sidequest.periodic; pushed by sidequest.worker.periodic)
#
#     sq:periodic                  HASH entry name -> definition JSON (class, cron | every,
#                                  args, tz, queue, catch_up), written by starting workers
#     sq:periodic:removed          HASH entry name -> epoch it was removed: a worker still
#                                  running an older definition stops pushing it
#     sq:periodic:state:<name>     HASH tick (last tick handled), last_tick + jid + at (the
#                                  last push), paused, outcome + outcome_at of that jid
#     sq:periodic:tick:<name>:<t>  STRING jid pushed for the tick at epoch <t>; set NX in the
#                                  same script as the push, so a tick is pushed once; TTL
PERIODIC = "sq:periodic"
PERIODIC_REMOVED = "sq:periodic:removed"


def periodic_state(name: str) -> str:
    return _tag() + "sq:periodic:state:" + name


def periodic_tick(name: str, tick: int) -> str:
    return _tag() + f"sq:periodic:tick:{name}:{tick}"


# Redis Cluster mode (sidequest.connection switches to it for a redis+cluster:// URL)
#
# Every key gets its shard's hash tag in front: {sq} on the default shard ({sq}queue:default,
# {sq}retry, {sq}sq:inprogress:<identity>), {sq:<name>} on shard <name>. Redis Cluster hashes
# only the tag, so a shard's keys share one slot and every MULTI and Lua script stays legal
# (no CROSSSLOT), while different shards' slots differ and can live on different primaries.
# Set members (queue names, process identities) stay untagged. The limiters and the
# dashboard's logins live on the default shard whichever shard asks (ON_DEFAULT_SHARD).
CLUSTER_TAG = "{sq}"
_NAMES = {name: value for name, value in globals().items()
          if name.isupper() and isinstance(value, str) and name != "CLUSTER_TAG"}
ON_DEFAULT_SHARD = frozenset({"LIMITERS", "WEB_LOGIN_SLOT"})
_cluster = False


def tag_of(shard: str) -> str:
    """The hash tag in front of the keys of shard ``shard``: "" with plain Redis."""
    if not _cluster:
        return ""
    return CLUSTER_TAG if shard == scope.DEFAULT else "{sq:" + shard + "}"


def _tag() -> str:
    return tag_of(scope.current()) if _cluster else ""


def _default_tag() -> str:
    return tag_of(scope.DEFAULT)


def use_cluster_names(on: bool) -> None:
    """Switch every key name to its cluster form (``on``) or back to Sidekiq's.

    Sidekiq's names are plain module attributes. Tagged names depend on the shard that the
    code reading them works on, so on a cluster they are taken out of the module and
    ``__getattr__`` builds each one as it is read."""
    global _cluster
    _cluster = on
    for name, value in _NAMES.items():
        if on:
            globals().pop(name, None)
        else:
            globals()[name] = value


if not TYPE_CHECKING:  # mypy keeps checking the names above; only their values vary

    def __getattr__(name: str) -> str:
        value = _NAMES.get(name)
        if value is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return (_default_tag() if name in ON_DEFAULT_SHARD else _tag()) + value
