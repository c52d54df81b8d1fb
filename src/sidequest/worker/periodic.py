"""The periodic poller: a thread in every worker process that pushes each due tick of the
periodic entries, exactly once across all processes, with no leader to lose.

Every process computes the same ticks (named by their scheduled time, from Redis's clock, not
its own) and offers each to one script that pushes the job only if the tick was not pushed
before: a per-tick key set NX in the same atomic step as the LPUSH, and a monotonic last tick
per entry. A process killed at any point leaves either both or neither.

Ticks late by up to ``periodic_grace`` seconds (a restart, Redis away for a moment) are still
pushed, one job each; older ones were missed while no worker ran, and are skipped, or run
once for entries with ``catch_up``.

At start the process writes its entries to Redis and, if it defines any, removes the entries
that its own modules and settings file defined before and no longer define (leaving a
tombstone so that a process still running the old code stops pushing them); other pools'
entries stay. A definition that differs from the stored one is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis

from sidequest import (
    connection,
    items,
    keys,
    limiter,
    periodic_jobs,
    registry,
    unique,
)
from sidequest.api.periodic import remove
from sidequest.config import Config
from sidequest.errors import ConfigError
from sidequest.payload import Payload, dumps, new_jid
from sidequest.periodic_jobs import PAYLOAD_NAME, PAYLOAD_TICK, Entry
from sidequest.worker.logs import counted
from sidequest.worker.redis_wait import Outage

log = logging.getLogger("sidequest")
#: Longest sleep between polls: how soon a re-registration after a Redis restart happens.
MAX_WAIT = 5.0
#: Most on-time ticks pushed per entry per poll (60 with every=1 and the default grace).
MAX_TICKS = 1000


class PeriodicPoller:
    def __init__(self, config: Config, client: redis.Redis, stopping: threading.Event,
                 entries: list[Entry]) -> None:
        self.config = config
        self.client = client
        self.stopping = stopping
        self.entries = entries
        #: Set when the process is quieted: like the scheduler, stop pushing.
        self.paused = threading.Event()
        self._push = connection.script("periodic_push")
        self._last: dict[str, int] = {}  # ticks handled, kept across a Redis data loss
        self._gone: set[str] = set()  # removed by a process started later: not pushed here
        self._noted: dict[str, int] = {}  # missed spans already logged
        #: Entries whose unique job holds their ticks back, with the holder's jid (logged once
        #: per holder, whichever process pushed it).
        self._skipping: dict[str, object] = {}
        self._rng = random.Random()
        self.ttl = int(2 * config.periodic_grace) + 60

    def run(self) -> None:
        if not self.entries:
            return
        outage = Outage("periodic")
        synced = False
        while not self.stopping.is_set():
            wait = MAX_WAIT
            try:
                if not synced:
                    sync(self.client, self.entries)
                    synced = True
                if not self.paused.is_set():
                    wait = self.poll()
                outage.ok()
            except redis.RedisError as exc:
                outage.failed(exc)
                wait = 1.0
            # A little jitter: processes woken for the same tick do not all hit Redis at once.
            self.stopping.wait(wait + self._rng.random() * 0.02)

    def poll(self) -> float:
        """Offer every due tick; returns the seconds until the next one (at most MAX_WAIT)."""
        live = self.entries
        # TIME on its own: a Redis Cluster pipeline refuses commands without a key.
        seconds, micros = self.client.time()
        pipe = self.client.pipeline(transaction=False)
        for entry in live:
            pipe.hget(keys.periodic_state(entry.name), "tick")
            pipe.hexists(keys.PERIODIC, entry.name)
        replies = pipe.execute()
        now = seconds + micros / 1e6
        wait = MAX_WAIT
        for i, entry in enumerate(live):
            stored, defined = replies[2 * i], replies[1 + 2 * i]
            if entry.name in self._gone:
                if not defined:
                    continue
                # A process that starts later defines it again (the last to start decides).
                log.info("periodic %s is defined again; pushing it", entry.name)
                self._gone.discard(entry.name)
            elif not defined and not self._restore(entry, now):
                continue
            last = max(int(float(stored or 0)), self._last.get(entry.name, 0))
            # Remembered though another process pushed them: should Redis lose its data, the
            # first process to notice writes the state again from here, whichever it is.
            self._last[entry.name] = last
            for tick, handled in self.due(entry, last, now):
                if not self._offer(entry, tick, handled):
                    break
            following = entry.schedule.next_after(max(now, self._last.get(entry.name, 0)))
            wait = min(wait, following - now)
        return max(wait, 0.0)

    def due(self, entry: Entry, last: int, now: float) -> list[tuple[int, int]]:
        """(tick, handled) pairs to offer, oldest first: a catch-up for missed ticks, then
        every tick within the grace period. A never-seen entry starts now."""
        horizon = now - self.config.periodic_grace
        if not last:
            last = math.floor(now) - 1  # registration sets it; a lost state starts now
        out: list[tuple[int, int]] = []
        start: float = last
        first = entry.schedule.next_after(last)
        missed = first <= horizon and not entry.catch_up
        if first <= horizon:
            start = horizon
            if entry.catch_up:
                out.append((first, math.floor(horizon)))
        tick = entry.schedule.next_after(start)
        while tick <= now and len(out) < MAX_TICKS:
            out.append((tick, tick))
            tick = entry.schedule.next_after(tick)
        if missed and self._noted.get(entry.name) != first:
            self._noted[entry.name] = first
            log.info("periodic %s: %s missed while no worker ran and skipped (set catch_up"
                     " to run them once); %s of the last %g s (periodic_grace) still due",
                     entry.name, _missed(entry, first, horizon), counted(len(out), "tick"),
                     self.config.periodic_grace)
        return out

    def _offer(self, entry: Entry, tick: int, handled: int) -> bool:
        """Push ``tick`` unless someone did; False when the entry is gone."""
        job = items.normalize({**entry.payload_base(), PAYLOAD_TICK: tick},
                              jid=new_jid())
        job["enqueued_at"] = job["created_at"]
        script_keys = [keys.PERIODIC, keys.periodic_state(entry.name),
                       keys.periodic_tick(entry.name, tick), keys.QUEUES, keys.queue(entry.queue)]
        script_args = [entry.name, tick, handled, dumps(job), entry.queue, self.ttl, job["jid"],
                       job["created_at"]]
        if job.get(unique.FOR) and unique.DIGEST in job:
            # A unique job's lock, as a push from code takes it: a tick while the last one
            # is still queued or running is skipped, not run alongside it.
            script_keys.append(keys.unique_lock(job[unique.DIGEST]))
            script_args.append(unique.lock_ttl_ms(job, job["created_at"]))
        result = int(self._push(keys=script_keys, args=script_args, client=self.client))
        self._last[entry.name] = max(self._last.get(entry.name, 0), handled)
        if result == 1:
            self._skipping.pop(entry.name, None)
            log.debug("periodic %s: pushed %s for tick %d", entry.name, job["jid"], tick)
        elif result == -3:
            self._held_back(entry, tick, script_keys[-1])
        # -1: removed since this process started (or Redis lost it): _restore decides next.
        return result != -1

    def _held_back(self, entry: Entry, tick: int, lock: str) -> None:
        """A tick the entry's unique job held back: logged once per job holding them (the
        lock names its jid), not at every tick while it runs, nor only once while other
        processes push the later runs."""
        holder = self.client.get(lock)
        if self._skipping.get(entry.name) == holder:
            return
        self._skipping[entry.name] = holder
        log.info("periodic %s: tick %s skipped: the job is unique (unique_for) and an"
                 " identical one is still queued or running (the ticks it holds back"
                 " are not logged one by one)", entry.name,
                 time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(tick)))

    def _restore(self, entry: Entry, now: float) -> bool:
        """The definition is missing: removed by a process that no longer defines it (stop
        pushing it here), or lost with Redis's data (write it again and carry on)."""
        if self.client.hexists(keys.PERIODIC_REMOVED, entry.name):
            log.warning("periodic %s was removed (from the dashboard or the API, or by a process"
                        " that no longer defines it); this process stops pushing it until a"
                        " process that defines it starts", entry.name)
            self._gone.add(entry.name)
            return False
        log.warning("periodic %s: its definition is missing from Redis (was Redis's data "
                    "lost?); writing it again (a pause it had is lost with it)", entry.name)
        register(self.client, entry, self._last.get(entry.name) or math.floor(now))
        return True


def sync(client: redis.Redis, entries: list[Entry]) -> None:
    """At start: write this process's entries, and remove the stored ones that its modules
    and files defined before and define no more (see _stale)."""
    stored = cast(dict[bytes, bytes], client.hgetall(keys.PERIODIC))
    seconds, _ = client.time()
    names = {e.name for e in entries}
    for entry in entries:
        old = stored.get(entry.name.encode())
        if old is not None and not _same_entry(_loads(old), entry.definition()):
            log.warning("periodic %s differs from its stored definition (an earlier deploy's,"
                        " or another process's): %s here, %s in Redis; this definition replaces"
                        " it (processes still running the other one keep pushing theirs until"
                        " they restart)", entry.name,
                        json.dumps(entry.definition()), old.decode("utf-8", "replace"))
        register(client, entry, int(seconds))
    if not entries:
        return
    # Its entries' places, and every module it loads: a module that dropped its last entry
    # no longer shows among the entries, but its stored ones are this process's to remove.
    sources = {entry.source for entry in entries} | {f"module {name}" for name in list(sys.modules)}
    for raw, old in stored.items():
        name = raw.decode("utf-8", "replace")
        source = _stale(name, _loads(old), names, sources)
        if source is not None:
            remove(client, name, int(seconds))
            log.info("periodic %s removed: %s no longer defines it", name,
                     source or "this process")


def _stale(name: str, stored: Any, names: set[str], sources: set[str]) -> str | None:
    """Where a stored entry was defined, if this process defines no entry of that name but
    loads that place: a module or file of its own dropped it. None to keep it: another pool's
    entry, from a module or a file this process does not load. An entry stored without its
    place (by an older version) goes as any entry this process does not define ("")."""
    if name in names:
        return None
    source = stored.get(periodic_jobs.SOURCE) if isinstance(stored, dict) else None
    if isinstance(source, str) and source:
        return source if source in sources else None
    return ""


def _missed(entry: Entry, first: int, horizon: float) -> str:
    """The ticks missed, from ``first`` to the last before ``horizon``: "the tick of T", or
    "3 ticks, from A to B" (counted up to MAX_TICKS: a long outage of a frequent entry)."""
    last, count, tick = first, 0, first
    while tick <= horizon and count <= MAX_TICKS:
        last, count = tick, count + 1
        tick = entry.schedule.next_after(tick)
    if count == 1:
        return f"the tick of {_utc(first)} was"
    if count > MAX_TICKS:  # not counted to the end
        return f"more than {MAX_TICKS} ticks, from {_utc(first)} on, were"
    return f"{count} ticks, from {_utc(first)} to {_utc(last)}, were"


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _same_entry(stored: Any, defined: dict[str, Any]) -> bool:
    """The same schedule, job and arguments; the class's options may differ (code changed
    them, or a process stored none), and the last process to start stores its own."""
    if not isinstance(stored, dict):
        return False
    mutable = (periodic_jobs.OPTIONS, periodic_jobs.SOURCE)  # moving it to a module is no change
    return ({k: v for k, v in stored.items() if k not in mutable}
            == {k: v for k, v in defined.items() if k not in mutable})


def register(client: redis.Redis, entry: Entry, since: int) -> None:
    """Write ``entry``'s definition; a new entry's first tick is the first after ``since``."""
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.PERIODIC, entry.name, dumps(entry.definition()))
    pipe.hdel(keys.PERIODIC_REMOVED, entry.name)
    pipe.hsetnx(keys.periodic_state(entry.name), "tick", since)
    pipe.execute()


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def load_entries(config: Config) -> list[Entry]:
    """The entries of this process: registered by its modules, then its [[periodic]] tables
    (built again now that the application is loaded, so job classes give their options)."""
    for table in config.periodic:
        periodic_jobs.add(periodic_jobs.from_table(table, "config file"))
    found = periodic_jobs.entries()
    periodic_jobs.check_classes(found)
    return found


def warn_unserved(entries: list[Entry], config: Config) -> None:
    """Point out the entries (of this process's shard) whose queue it does not serve, and
    those whose job it cannot run though it serves their queue."""
    for entry in entries:
        if entry.queue not in config.queue_names:  # another worker may: a warning, no more
            log.warning("periodic %s pushes to queue %r, which this worker does not serve"
                        " (-q): its jobs wait there unless another worker does", entry.name,
                        entry.queue)
        elif registry.find(entry.job_class) is None:  # a Ruby job, say: fine if it is fetched
            slip = registry.bare_name(entry.job_class)
            if slip:  # every tick fetched here would fail
                raise ConfigError(f"periodic entry {entry.name!r}: {slip}")
            log.warning("periodic %s pushes %s to queue %r, which this worker serves but"
                        " whose job it does not load: each one it fetches fails and is"
                        " retried. Give the entry a queue only the process that runs %s"
                        " serves, or load its module here (-r)", entry.name, entry.job_class,
                        entry.queue, entry.job_class)


_outcome_script = connection.script("periodic_outcome")


class _RecordOutcome:
    """Server middleware: note how the last job of a periodic entry ended, for the
    dashboard. Other jobs pass straight through."""

    def __call__(self, job: Any, payload: Payload, queue: str,
                 call_next: Callable[[], Any]) -> Any:
        name = payload.get(PAYLOAD_NAME)
        if not isinstance(name, str):
            return call_next()
        try:
            result = call_next()
        except BaseException:
            _note(name, payload, "failed")
            raise
        if not limiter.rescheduled(payload):  # sent back by a full limiter: it runs later
            _note(name, payload, "succeeded")
        return result

    async def acall(self, job: Any, payload: Payload, queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        """The same around an ``async def perform`` job (so the chain stays async)."""
        name = payload.get(PAYLOAD_NAME)
        if not isinstance(name, str):
            return await call_next()
        try:
            result = await call_next()
        except BaseException:
            await asyncio.to_thread(_note, name, payload, "failed")
            raise
        if not limiter.rescheduled(payload):
            await asyncio.to_thread(_note, name, payload, "succeeded")
        return result


record_outcome = _RecordOutcome()


def _note(name: str, payload: Payload, outcome: str) -> None:
    try:
        _outcome_script(keys=[keys.periodic_state(name)],
                        args=[str(payload.get("jid", "")), outcome, time.time()],
                        client=connection.client())
    except redis.RedisError as exc:  # the job's own result matters more than this note
        log.warning("periodic %s: could not record the outcome of %s: %s", name,
                    payload.get("jid"), exc)
