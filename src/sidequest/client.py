"""Pushing jobs into Redis exactly as Sidekiq's client does.

``push`` takes a normalized payload (``class``, ``args``, ``queue`` ... and optionally ``at``),
runs the client middleware, and writes it in one round trip: LPUSH ``queue:NAME`` and SADD
``queues`` for now, ZADD ``schedule`` for later. Testing modes replace the write with
``set_push_override`` so that the same code path is exercised in users' tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import redis
from redis.cluster import RedisCluster

from sidequest import (
    batch,
    batch_members,
    connection,
    keys,
    middleware,
    oncommit,
    sending,
    shards,
    status,
    unique,
    url_problems,
    wire,
)
from sidequest.errors import RedisUnavailable
from sidequest.items import normalize
from sidequest.payload import Payload, check_args, dumps_bytes, new_jids, now
from sidequest.url_clients import CLUSTER_UNAVAILABLE

#: Intervals below this are relative seconds; larger values are epoch times (Sidekiq's rule).
RELATIVE_LIMIT = 1_000_000_000
BULK_BATCH = 1000

PushOverride = Callable[[list[Payload]], None]
_override: PushOverride | None = None


def pushes_are_local() -> bool:
    """True in the testing modes: pushes stay in this process instead of going to Redis."""
    return _override is not None


def set_push_override(func: PushOverride | None) -> PushOverride | None:
    """Route pushes to ``func`` instead of Redis (used by ``sidequest.testing``)."""
    global _override
    previous, _override = _override, func
    return previous


def push(item: Payload) -> str | None:
    """Normalize, run client middleware and write one job; returns its jid (None if cancelled,
    or if it is a unique job and an identical one is queued, scheduled or running)."""
    jobs = push_many([item])
    return jobs[0]


def push_many(items: Sequence[Payload], batch_size: int = BULK_BATCH, *,
              uniform: bool = False) -> list[str | None]:
    """Push jobs sharing one ``created_at``, one pipeline per ``batch_size``; jids in order.

    Every item is checked before the first batch is written, so a bad one writes nothing.
    ``uniform``: the items differ in ``args`` only (``perform_bulk``), so what else they
    carry is checked once, not once per job.
    """
    if len(items) > 1 and any("jid" in item for item in items):
        # Every job would carry the same jid, and jids must be unique (Sidekiq refuses too).
        raise ValueError("a jid was given for a bulk push of several jobs; each job needs its "
                         "own jid: drop jid from .set(...), or push the jobs one at a time")
    jids = new_jids(len(items))
    if oncommit.wanted(items):
        return _push_on_commit(items, batch_size, jids, uniform)
    return _push_now(items, batch_size, jids, uniform)


def _normalize_all(items: Sequence[Payload], created: float | None, jids: list[str],
                   uniform: bool) -> list[Payload]:
    """Every item checked and filled in; a bad one of several is named by its position."""
    jobs: list[Payload] = []
    try:
        if not uniform or len(items) < 2 or items[0].get(unique.FOR):
            # A unique job's identity comes from its arguments: each is normalized in full.
            for item, jid in zip(items, jids, strict=True):
                jobs.append(normalize(item, created, jid))
            return jobs
        first = normalize(items[0], created, jids[0])
        # The rest differ from the first in args and jid only: a copy keeps its key order.
        jobs.append(first)
        for item, jid in zip(items[1:], jids[1:], strict=True):
            args = item["args"]
            if type(args) is not list:
                raise TypeError(f"job args must be a list, got {type(args).__name__}: {args!r}")
            check_args(args)
            job = first.copy()
            job["args"], job["jid"] = args, jid
            jobs.append(job)
        return jobs
    except (TypeError, ValueError) as exc:
        if len(items) < 2:
            raise
        where = f"job {len(jobs)} of the {len(items)} pushed together (counting from 0)"
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"{where}: {exc}; none of them was enqueued") from None


def _push_on_commit(items: Sequence[Payload], batch_size: int,
                    jids: list[str], uniform: bool) -> list[str | None]:
    """Check the jobs now (a bad one fails the caller, not the commit), write them when the
    transaction commits; the jids are chosen now, so the caller can keep them."""
    if batch.current() is not None and oncommit.would_wait():
        # Outside a transaction the push is written at once and joins the batch as any does.
        raise ValueError("enqueue_on_commit cannot be used inside `with batch.jobs():` while a"
                         " transaction is open (the batch closes before the commit); push the"
                         " batch after the commit")
    _normalize_all(items, None, jids, uniform)
    given = [item.get("jid") or jid for item, jid in zip(items, jids, strict=True)]
    named = [(str(item.get("class")), str(jid)) for item, jid in zip(items, given, strict=True)]
    deferred = oncommit.Deferred(lambda: _push_now(items, batch_size, jids, uniform), named)
    oncommit.defer(deferred)
    if deferred.ran:  # outside a transaction it ran at once: a refused duplicate is None
        return cast(list[str | None], deferred.result)
    return given


def _push_now(items: Sequence[Payload], batch_size: int, jids: list[str],
              uniform: bool = False) -> list[str | None]:
    created = now()
    normalized = _normalize_all(items, created, jids, uniform)
    joining = batch.current()
    if joining is not None:  # pushed inside `with batch.jobs():`
        for job in normalized:
            job.setdefault(batch.PAYLOAD_KEY, joining.ancestry)
    table = connection.shard_map()
    if table is not None:  # a job that would be stranded on another shard fails now
        shards.check_jobs(table, normalized, joining.shard if joining is not None else None)
    results: list[str | None] = []
    step = max(1, batch_size)
    for start in range(0, len(normalized), step):
        chunk = [_through_middleware(job) for job in normalized[start : start + step]]
        try:
            refused = _write([job for job in chunk if job is not None])
        except RedisUnavailable as exc:
            if len(normalized) > step:  # a bulk push of several chunks: say which went
                raise _bulk_failure(exc, results, normalized[start + step:]) from exc
            raise
        results.extend(job["jid"] if job is not None and job["jid"] not in refused else None
                       for job in chunk)
    return results


def _bulk_failure(exc: RedisUnavailable, written: list[str | None],
                  after: list[Payload]) -> RedisUnavailable:
    """``exc`` of one chunk of a bulk push, with the jobs written before it and the jobs
    never sent after it, so that a caller can push exactly what is missing."""
    enqueued = tuple(jid for jid in written if jid is not None)
    unsent = tuple(str(job["jid"]) for job in after)
    failure = RedisUnavailable(
        f"{exc} (this chunk of a bulk push; before it {len(enqueued)} jobs were enqueued,"
        f" and the {len(unsent)} after it were not sent: the exception's .enqueued and"
        f" .unsent list their jids)")
    failure.enqueued, failure.unsent = enqueued, unsent
    return failure


def _through_middleware(job: Payload) -> Payload | None:
    if not len(middleware.client):
        return job
    result = middleware.client.invoke((job, job["queue"]), lambda: job)
    if result is None:
        return None
    if not isinstance(result, dict):
        raise TypeError(f"client middleware must return the payload or None, got {result!r}")
    check_args(result.get("args"))
    return result


def _write(jobs: list[Payload]) -> set[str]:
    """Write the jobs in one round trip; returns the jids of unique jobs that were refused
    because an identical job holds the lock."""
    if not jobs:
        return set()
    if _override is not None:
        _override(jobs)
        return set()
    table = connection.shard_map()
    if table is None:
        return _write_to(_guarded(connection.client, None), jobs)
    refused: set[str] = set()
    for shard, part in shards.by_shard(table, jobs).items():  # each on its queue's shard
        with connection.on_shard(shard):  # its client, and on a cluster its keys' tag
            # Guarded too: a cluster client reads the slot map as it is made.
            refused |= _write_to(_guarded(connection.client, shard), part, shard)
    return refused


def _write_to(target: redis.Redis, jobs: list[Payload], shard: str | None = None) -> set[str]:
    stamp = now()
    by_queue, scheduled, uniques = _sort(jobs, stamp)
    if not uniques and not any(map(_has_extras, jobs)):
        # The common push, plain jobs: its few commands, built without a pipeline.
        commands, scripts, atomic = _plain_commands(by_queue, scheduled), None, False
    else:
        commands, scripts = _all_commands(jobs, by_queue, scheduled, uniques, stamp)
        # Jobs that join a batch are written with their membership or not at all; jobs that
        # store their status with it too (a full Redis took the small status and refused the
        # job, and a poller waited a day on a "queued" job that did not exist), but on a
        # cluster, where a transaction is refused while the slot moves and a push is not.
        atomic = any(batch_members.ancestry_of(job) for job in jobs) or (
            not isinstance(target, RedisCluster) and any(map(status.wanted, jobs)))
    # Sent once: a push whose reply is late is never written twice (sending.py).
    answers = _guarded(lambda: sending.send(target, commands, scripts, atomic), shard, jobs)
    taken = answers[len(answers) - len(uniques):] if uniques else []
    return {job["jid"] for (job, _), ok in zip(uniques, taken, strict=True) if not ok}


def _all_commands(jobs: list[Payload], by_queue: dict[str, list[bytes]],
                  scheduled: dict[bytes, float], uniques: list[tuple[Payload, bytes]],
                  stamp: float) -> tuple[list[Any], dict[str, Any]]:
    """Every command of a push with batch members, stored statuses or unique jobs, gathered
    on a pipeline that is never executed; and the source of each script they call."""
    pipe = _recorder().pipeline(transaction=False)
    for job in jobs:  # batch membership first: the job cannot finish before it is a member
        ancestry = batch_members.ancestry_of(job)
        if ancestry and unique.DIGEST not in job:  # a unique push's script adds its own
            batch_members.add_member(pipe, ancestry[0], job["jid"])
    pipe.command_stack.extend((command, {}) for command in _plain_commands(by_queue, scheduled))
    for job in jobs:  # a job that stores its result is "queued" or "scheduled" from now
        if status.wanted(job):
            status.write(pipe, job, "scheduled" if job.get("at") is not None else "queued")
    _push_unique(pipe, uniques, stamp)
    scripts = {made.sha: made.script for made in pipe.scripts}
    return [args for args, _ in pipe.command_stack], scripts


def _recorder() -> redis.Redis:
    """A client that never connects, whose pipelines only gather commands."""
    global _recording_client
    if _recording_client is None:
        _recording_client = redis.Redis(host="commands-are-only-gathered")
    return _recording_client


_recording_client: redis.Redis | None = None


def _has_extras(job: Payload) -> bool:
    """Whether writing the job takes more than its queue or the schedule."""
    return bool(batch_members.ancestry_of(job)) or status.wanted(job)


def _plain_commands(by_queue: dict[str, list[bytes]],
                    scheduled: dict[bytes, float]) -> list[tuple[Any, ...]]:
    """What a pipeline would send for jobs that only go to their queue or the schedule."""
    commands: list[tuple[Any, ...]] = []
    if scheduled:
        pairs = [part for body, at in scheduled.items() for part in (at, body)]
        commands.append(("ZADD", keys.SCHEDULE, *pairs))
    if by_queue:
        commands.append(("SADD", keys.QUEUES, *by_queue))
        commands.extend(("LPUSH", keys.queue(queue), *payloads)
                        for queue, payloads in by_queue.items())
    return commands


def _sort(jobs: list[Payload], stamp: float) -> tuple[
        dict[str, list[bytes]], dict[bytes, float], list[tuple[Payload, bytes]]]:
    """Each job's stored text, by where it goes: a queue, the schedule, or a unique push."""
    by_queue: dict[str, list[bytes]] = {}
    scheduled: dict[bytes, float] = {}
    uniques: list[tuple[Payload, bytes]] = []
    for job in jobs:
        at = job.get("at")
        if at is not None:
            body = dumps_bytes({k: v for k, v in job.items() if k not in ("at", "enqueued_at")})
        else:
            job["enqueued_at"] = stamp
            body = dumps_bytes(job)
        if unique.DIGEST in job:
            uniques.append((job, body))
        elif at is not None:
            scheduled[body] = float(at)
        else:
            by_queue.setdefault(job["queue"], []).append(body)
    return by_queue, scheduled, uniques


def _push_unique(pipe: redis.client.Pipeline, uniques: list[tuple[Payload, bytes]],
                 stamp: float) -> None:
    """Each unique job: take its lock and write it in one script call (lua/unique_push.lua),
    which makes it a member of its batch only if it is written: a refused duplicate is none,
    else its batch would wait for it forever."""
    if not uniques:
        return
    script = connection.script("unique_push")
    for job, body in uniques:
        at = job.get("at")
        target = keys.SCHEDULE if at is not None else keys.queue(job["queue"])
        script(keys=[keys.unique_lock(job[unique.DIGEST]), keys.QUEUES, target,
                     *batch_members.member_keys(job)],
               args=[job["jid"], unique.lock_ttl_ms(job, stamp), body,
                     "" if at is None else repr(float(at)), job["queue"], batch_members.KEEP],
               client=pipe)


_T = TypeVar("_T")


def _guarded(write: Callable[[], _T], shard: str | None, jobs: Sequence[Payload] = ()) -> _T:
    """Run a write of ``jobs``, turning connection failures into a RedisUnavailable that
    says so."""
    try:
        return write()
    except (redis.AuthenticationError, redis.exceptions.InvalidResponse) as exc:
        # The URL's fault (a refused password, a server that is no Redis): no retry helps.
        raise (connection.url_problem(exc, _where(shard)) or RedisUnavailable(str(exc))) from exc
    except wire.PartlyWritten as exc:
        raise RedisUnavailable(
            f"Redis at {_where(shard)} wrote part of the push and refused the rest ({exc}),"
            f" so the jobs may be in Redis in part; check for them ({_jids(jobs)}) before"
            " pushing them again"
        ) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Sent or not: a lost reply, or a read that timed out (also behind a cluster's "no
        # node answers"), may have written the jobs; a connection never made did not.
        message = (_maybe_enqueued(shard, exc, jobs) if wire.maybe_sent(exc)
                   else _unreachable(shard, exc))
        raise RedisUnavailable(message) from exc
    except CLUSTER_UNAVAILABLE as exc:
        raise _refused(shard, exc) or RedisUnavailable(
            f"Redis Cluster at {_where(shard)} cannot take the write now ({exc}): a primary"
            " is down or failing over, or the slot is being moved to another primary. The job"
            " was not enqueued, so retry later or fail the request"
        ) from exc
    except redis.ResponseError as exc:
        problem = _refused(shard, exc) or connection.url_problem(exc, _where(shard))
        if problem is None:
            raise
        raise problem from exc  # the job was not enqueued


def _refused(shard: str | None, exc: Exception) -> Exception | None:
    """The error for a write Redis refused, so that nothing was enqueued; None for a refusal
    not known here."""
    where = _where(shard)
    if isinstance(exc, redis.ReadOnlyError):
        return RedisUnavailable(
            f"Redis at {where} is a read-only replica ({exc}); the job was not enqueued."
            " After a failover, point the URL at the new primary (or use Sentinel:"
            " redis+sentinel://), then retry")
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return RedisUnavailable(
            f"Redis at {where} is out of memory (maxmemory reached): {exc}; the job was not"
            " enqueued. Free memory or raise maxmemory.")
    if url_problems.refused_for_now(exc):  # (MasterDownError is a ClusterDownError too)
        return RedisUnavailable(
            f"Redis at {where} refuses writes for now ({exc}): too few replicas are in reach"
            " (min-replicas-to-write), or a replica lost its primary, as during a failover."
            " The job was not enqueued, so retry later or fail the request")
    return None


def _maybe_enqueued(shard: str | None, exc: Exception, jobs: Sequence[Payload]) -> str:
    return (f"the connection to Redis at {_where(shard)} failed after the job was sent"
            f" ({exc}), so it may have been enqueued; check for it ({_jids(jobs)}) before"
            " pushing it again")


def _unreachable(shard: str | None, exc: Exception) -> str:
    return (f"could not reach Redis at {_where(shard)} ({url_problems.readable(exc)}); the job"
            " was not enqueued, so retry later or fail the request")


def _jids(jobs: Sequence[Payload]) -> str:
    shown = ", ".join(str(job.get("jid")) for job in jobs[:3])
    more = f" and {len(jobs) - 3} more" if len(jobs) > 3 else ""
    return f"jid {shown}" if len(jobs) == 1 else f"jids {shown}{more}" if jobs else "its jid"


def _where(shard: str | None) -> str:
    if shard is None:
        return connection.redacted()
    return f"{connection.redacted(connection.shard_url(shard))} (shard {shard!r})"


def schedule_time(when: float) -> float | None:
    """Turn a perform_in/perform_at value into an epoch, or None for "run now"."""
    at = when if when >= RELATIVE_LIMIT else now() + when
    return None if at <= now() else at


def bulk_items(base: Payload, args_list: Iterable[Any]) -> list[Payload]:
    items = []
    for i, args in enumerate(args_list):
        if type(args) is not list:
            raise TypeError(
                f"perform_bulk takes a list of argument lists; item {i} is"
                f" {type(args).__name__}: {args!r}"
            )
        items.append({**base, "args": args})
    return items
