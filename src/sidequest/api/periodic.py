"""Periodic entries as Redis holds them, for the CLI, the dashboard and scripts:

    from sidequest.api import PeriodicSet
    for entry in PeriodicSet():
        print(entry.name, entry.schedule, entry.next_run, entry.last_jid)
    PeriodicSet().pause("nightly"); PeriodicSet().enqueue_now("nightly")

Definitions were written by worker processes; anything another program wrote that cannot be
read shows as unknown instead of raising.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from sidequest import client as push_client
from sidequest import connection, cron, keys
from sidequest.api.processes import ProcessSet
from sidequest.errors import ConfigError, SidequestError
from sidequest.payload import Payload, new_jid
from sidequest.periodic_jobs import OPTIONS, job_payload

#: Seconds a tick may stay unhandled before the entry is said to be overdue: a running worker
#: polls every few seconds, and a restart or a short Redis outage is within its grace.
OVERDUE_AFTER = 120.0


@dataclass(frozen=True)
class PeriodicEntry:
    name: str
    definition: dict[str, Any]
    #: The schedule as written: the cron expression, or "every 30s".
    schedule: str
    #: The schedule in words ("At 03:00 every day"), or "" when it cannot be read.
    description: str
    tz: str
    next_run: float | None
    last_run: float | None
    last_tick: int | None
    last_jid: str
    #: "succeeded" or "failed" once the last pushed job ran; "" before that.
    outcome: str
    paused: bool
    #: The first tick no process handled, when it is more than OVERDUE_AFTER seconds past and
    #: no running worker defines the entry (its module is not loaded by any ``-r``, or every
    #: worker is stopped). None while ticks are handled, paused ones included.
    overdue_since: float | None = None

    @property
    def job_class(self) -> str:
        return str(self.definition.get("class", ""))

    @property
    def queue(self) -> str:
        return str(self.definition.get("queue", "default"))

    @property
    def source(self) -> str:
        """Where the entry is defined, as the worker that wrote it said: ``module app.cron``
        or ``file ./pool.toml``; "" when it did not say (an older worker, another program)."""
        value = self.definition.get("source")
        return value if isinstance(value, str) else ""

    @property
    def args(self) -> list[Any]:
        """The job's arguments; [] when the stored definition has none it can read."""
        args = self.definition.get("args")
        return args if isinstance(args, list) else []


class PeriodicSet:
    """Every periodic entry in Redis, by name."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self.client = client or connection.client()

    def __iter__(self) -> Iterator[PeriodicEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        return int(self.client.hlen(keys.PERIODIC))

    def entries(self) -> list[PeriodicEntry]:
        return self._read(self._names())

    def page(self, page: int, count: int) -> tuple[list[PeriodicEntry], int]:
        """The entries of page ``page`` (``count`` a page, by name), and how many there are:
        only that page's definitions and states are read, however many entries there are."""
        names = self._names()
        start = (page - 1) * count
        return self._read(names[start:start + count]), len(names)

    def _names(self) -> list[bytes]:
        """Every entry's name as stored, in the order of the names as shown."""
        stored = cast(list[bytes], self.client.hkeys(keys.PERIODIC))
        return sorted(stored, key=lambda raw: raw.decode("utf-8", "replace"))

    def _read(self, stored_names: list[bytes]) -> list[PeriodicEntry]:
        if not stored_names:
            return []
        definitions = cast(list[bytes | None],
                           self.client.hmget(keys.PERIODIC, stored_names))
        names = [raw.decode("utf-8", "replace") for raw in stored_names]
        # TIME on its own: a Redis Cluster pipeline refuses commands without a key.
        seconds, micros = self.client.time()
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.periodic_state(name))
        replies = pipe.execute()
        now = seconds + micros / 1e6
        pushed = _defined_by_live_processes()
        return [_entry(name, definition, state, now, name in pushed)
                for name, definition, state in zip(names, definitions, replies, strict=True)
                if definition is not None]  # removed between the two reads

    def find(self, name: str) -> PeriodicEntry | None:
        return next((e for e in self.entries() if e.name == name), None)

    def pause(self, name: str) -> bool:
        """Stop pushing ``name``'s ticks until resumed; False if there is no such entry."""
        if not self.client.hexists(keys.PERIODIC, name):
            return False
        self.client.hset(keys.periodic_state(name), "paused", "1")
        return True

    def resume(self, name: str) -> bool:
        """Push ``name`` again from its next tick (the ticks it let pass are not replayed)."""
        if not self.client.hexists(keys.PERIODIC, name):
            return False
        self.client.hdel(keys.periodic_state(name), "paused")
        return True

    def remove(self, name: str) -> bool:
        """Delete ``name``'s entry, for one no process defines any more (a worker that starts
        with periodic entries removes the others itself, one started with none removes
        nothing). Running processes that still define it stop pushing it; one that starts
        with it writes it back. False if there is no such entry."""
        if not self.client.hexists(keys.PERIODIC, name):
            return False
        seconds, _ = self.client.time()
        remove(self.client, name, int(seconds))
        return True

    def enqueue_now(self, name: str) -> str | None:
        """Push ``name``'s job now, outside its schedule, as a normal push (client middleware
        included); it becomes the entry's last run. None if there is no such entry; raises
        SidequestError when the job is unique and an identical one is queued or running."""
        raw = self.client.hget(keys.PERIODIC, name)
        definition = _loads(raw)
        if not definition or not isinstance(definition.get("class"), str):
            return None
        # The entry's last run names the jid before the job is pushed: a worker quick enough
        # to end it first would otherwise find another jid there and record no outcome.
        payload = {**_payload(name, definition), "jid": new_jid()}
        state = keys.periodic_state(name)
        before = connection.script("periodic_now")(
            keys=[keys.PERIODIC, state], args=[name, payload["jid"], repr(time.time())],
            client=self.client)
        try:
            jid = push_client.push(payload)
        except BaseException:
            self._restore(state, payload["jid"], before)
            raise
        if jid is None:  # a unique job's lock is held, or client middleware dropped it
            self._restore(state, payload["jid"], before)
            raise SidequestError(f"{name} was not enqueued: its job is unique and an identical"
                                 f" one is still queued or running (or a client middleware"
                                 f" dropped it)")
        return jid

    def _restore(self, state: str, jid: str, before: list[Any] | None) -> None:
        """The last run as it was before the push of ``jid`` that did not happen, unless
        something wrote the state meanwhile (lua/periodic_restore.lua). ``before``: what
        lua/periodic_now.lua read, None for an entry removed meanwhile (no state written)."""
        if before is not None:
            connection.script("periodic_restore")(keys=[state], args=[jid, *before],
                                                  client=self.client)


def remove(client: redis.Redis, name: str, when: int) -> None:
    """Delete an entry and its state, and leave the mark (``when``, epoch seconds) by which
    processes that still define it know to stop pushing it."""
    pipe = client.pipeline(transaction=True)
    pipe.hdel(keys.PERIODIC, name)
    pipe.delete(keys.periodic_state(name))
    pipe.hset(keys.PERIODIC_REMOVED, name, when)
    pipe.execute()


def _payload(name: str, definition: dict[str, Any]) -> Payload:
    kwargs = definition.get("kwargs")
    item = job_payload(definition["class"], definition.get("queue") or "default",
                       list(definition.get("args") or []),
                       kwargs if isinstance(kwargs, dict) else None, name,
                       options=definition.get(OPTIONS))
    # No database transaction here to wait for: the push is the dashboard's own action.
    item.pop("enqueue_on_commit", None)
    return item


def _loads(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def schedule_of(definition: dict[str, Any]) -> cron.Schedule | None:
    """The schedule a stored definition describes, or None if it cannot be read."""
    try:
        if "every" in definition:
            return cron.Every(definition["every"])
        return cron.Cron(definition["cron"], cron.zone(definition.get("tz")))
    except (ConfigError, KeyError, TypeError):
        return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 1e11 else None


def _defined_by_live_processes() -> set[str]:
    """The entries that running Sidequest processes say they push (their records list them;
    a quiet one's count too: it pushes again once resumed)."""
    return {name for process in ProcessSet(clean=False) for name in process.periodic}


def _entry(name: str, raw: bytes, state: dict[bytes, bytes], now: float,
           pushed: bool = False) -> PeriodicEntry:
    definition = _loads(raw)
    fields = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
              for k, v in state.items()}
    schedule = schedule_of(definition)
    tick = _number(fields.get("tick"))
    next_run = overdue = None
    if schedule is not None:
        next_run = float(schedule.next_after(max(now, tick or 0)))
        if tick is not None and not pushed:  # written at registration and at each tick
            # A live process that defines it may have skipped ticks of an outage longer
            # than its grace, leaving the tick old: only with none is it overdue.
            first = float(schedule.next_after(tick))
            overdue = first if first < now - OVERDUE_AFTER else None
    written = definition.get("cron") or (
        f"every {definition['every']}s" if "every" in definition else "?")
    last_tick = _number(fields.get("last_tick"))
    return PeriodicEntry(
        name=name, definition=definition, schedule=str(written),
        description=schedule.describe() if schedule is not None else "",
        tz=str(definition.get("tz") or "UTC"), next_run=next_run,
        last_run=_number(fields.get("at")),
        last_tick=int(last_tick) if last_tick is not None else None,
        last_jid=fields.get("jid", ""), outcome=fields.get("outcome", ""),
        paused=fields.get("paused") == "1", overdue_since=overdue)
