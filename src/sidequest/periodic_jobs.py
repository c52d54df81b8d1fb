"""Periodic jobs: what to push and when (``sidequest.periodic(...)``). Definitions only; the
poller that pushes each tick exactly once lives in ``sidequest.worker.periodic`` and runs in
every worker process.

    sidequest.periodic(NightlyReport, cron="0 3 * * *", args=[7], tz="Europe/Paris")
    sidequest.periodic(Ping, cron="*/10 * * * * *")     # six fields: seconds first
    sidequest.periodic(Ping, every=30, name="ping")     # every 30 seconds

and ``[[periodic]]`` tables in the worker's TOML file (name, cron | every, class, args, tz,
queue, catch_up). Entries are registered when the application's modules are imported; a
worker started with ``-r`` writes them to Redis and removes the ones no longer defined.
"""

from __future__ import annotations

import difflib
import sys
import threading
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sidequest import cron, registry
from sidequest.errors import ConfigError, UnknownJobError
from sidequest.job import Job, JobFunction
from sidequest.options import QUEUE_NAME
from sidequest.payload import KWARGS, Payload, check_args
from sidequest.setter import unique_identity
from sidequest.signatures import check_call

#: ``every=``: seconds, or a timedelta.
Seconds = int | float | timedelta

#: Top-level payload keys of a periodic push (Ruby Sidekiq ignores keys it does not know):
#: the entry's name and the tick (epoch seconds) the job was pushed for.
PAYLOAD_NAME = "periodic"
PAYLOAD_TICK = "periodic_tick"
TABLE_KEYS = ("name", "cron", "every", "class", "args", "kwargs", "tz", "queue", "catch_up")
NAME = QUEUE_NAME  # letters, digits and _ : . - : safe in a key, a URL and a terminal

_lock = threading.Lock()
_entries: dict[str, Entry] = {}


@dataclass(frozen=True)
class Entry:
    """One periodic job: push ``job_class`` with ``args`` on every tick of ``schedule``."""

    name: str
    job_class: str
    schedule: cron.Schedule
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] | None = None
    tz: str | None = None
    queue: str = "default"
    #: Ticks missed while no worker ran (longer ago than the grace period) run once when a
    #: worker is back; without it they are skipped.
    catch_up: bool = False
    #: Where it is defined: "module app.cron" or "file ./sidequest.toml". A worker removes
    #: from Redis only the entries its own modules and files no longer define, so that pools
    #: that each define their own entries leave each other's alone. Not part of equality:
    #: one definition in two places is still one entry.
    source: str = field(default="", compare=False)

    @property
    def schedule_text(self) -> str:
        """The schedule as written: the cron expression, or ``every 30s``."""
        if isinstance(self.schedule, cron.Cron):
            return self.schedule.expression
        return f"every {self.schedule.seconds}s"

    def definition(self) -> dict[str, Any]:
        """The JSON stored in Redis for the dashboard, the CLI and other processes."""
        out: dict[str, Any] = {"name": self.name, "class": self.job_class}
        if isinstance(self.schedule, cron.Cron):
            out["cron"] = self.schedule.expression
        else:
            out["every"] = self.schedule.seconds
        out.update(args=self.args, tz=self.tz, queue=self.queue, catch_up=self.catch_up)
        if self.kwargs:
            out["kwargs"] = self.kwargs
        # The class's options (retry, timeout, unique_for, ...): "Enqueue now" from a
        # dashboard that does not load the class pushes what a tick would.
        options = {key: value for key, value in self.payload_base().items()
                   if key not in _NOT_OPTIONS}
        if options:
            out[OPTIONS] = options
        if self.source:
            out[SOURCE] = self.source
        return out

    def payload_base(self) -> Payload:
        """The job as a normal push would write it, before jid and timestamps."""
        return job_payload(self.job_class, self.queue, self.args, self.kwargs, self.name)


def job_payload(job_class: str, queue: str, args: list[Any], kwargs: dict[str, Any] | None,
                name: str, *, options: Any = None) -> Payload:
    """A periodic entry's job before jid and timestamps: the class's options when it is
    loaded here, else the ``options`` its defining process stored over Sidekiq's defaults
    (a Ruby class, or a dashboard without the app)."""
    cls = registry.find(job_class)
    if cls is not None:
        base = cls.payload_base()
    else:
        base = {"retry": True, **(options if isinstance(options, dict) else {}),
                "class": job_class}
    base["queue"] = queue
    base["args"] = list(args)
    if kwargs:
        base[KWARGS] = dict(kwargs)
    base[PAYLOAD_NAME] = name
    if cls is not None:  # a unique job is identified as perform_async would: unique_key
        unique_identity(cls, base, base["args"], kwargs or {})
    return base


#: The key of a stored definition holding the job class's push options.
OPTIONS = "options"
#: The key of a stored definition naming where it is defined (Entry.source).
SOURCE = "source"
#: Payload keys the entry itself sets: not the class's options.
_NOT_OPTIONS = frozenset({"class", "queue", "args", KWARGS, PAYLOAD_NAME, "unique_digest",
                          "enqueue_on_commit"})


def periodic(job: type[Job] | JobFunction[Any, Any] | str, *, cron: str | None = None,
             every: Seconds | None = None, args: list[Any] | tuple[Any, ...] = (),
             kwargs: dict[str, Any] | None = None, tz: str | None = None,
             name: str | None = None, queue: str | None = None,
             catch_up: bool = False) -> Entry:
    """Run ``job`` on a schedule: ``cron=`` (five fields, or six with seconds first, in the
    time zone ``tz``, UTC by default) or ``every=`` seconds. ``name`` (default: the job's
    name) identifies the entry in Redis and the dashboard. ``job`` may also be a job's name
    as a string, for a class this process does not define (a Ruby job, say).

    Registering the same name twice with the same definition is harmless (a module imported
    twice); with a different one it is an error."""
    entry = make_entry(job, cron=cron, every=every, args=args, kwargs=kwargs, tz=tz,
                       name=name, queue=queue, catch_up=catch_up)
    caller = sys._getframe(1).f_globals.get("__name__")
    return add(replace(entry, source=f"module {caller}") if isinstance(caller, str) else entry)


def add(entry: Entry) -> Entry:
    with _lock:
        old = _entries.get(entry.name)
        if old is not None and old != entry:
            raise ConfigError(
                f"periodic entry {entry.name!r} is defined twice, differently: "
                f"{old.definition()} and {entry.definition()}; give each its own name=")
        _entries[entry.name] = entry
    return entry


def make_entry(job: type[Job] | JobFunction[Any, Any] | str, *, cron: str | None = None,
               every: Seconds | None = None, args: list[Any] | tuple[Any, ...] = (),
               kwargs: dict[str, Any] | None = None, tz: str | None = None,
               name: str | None = None, queue: str | None = None,
               catch_up: bool = False) -> Entry:
    """A checked Entry, not registered (``periodic`` registers it)."""
    cls, wire = _job(job)
    label = f"periodic entry {name or wire!r}"
    schedule = _schedule(label, cron, every, tz)
    if type(args) not in (list, tuple):
        raise ConfigError(f"{label}: args must be a list, got {args!r}")
    check_args(list(args))
    if kwargs is not None:
        if type(kwargs) is not dict:
            raise ConfigError(f"{label}: kwargs must be a dict, got {kwargs!r}")
        check_args(kwargs, "kwargs")
    if cls is not None:
        try:
            check_call(cls, tuple(args), kwargs or {})
        except TypeError as exc:
            raise TypeError(f"{label}: {exc}") from None
    queue = queue if queue is not None else (cls.queue if cls is not None else "default")
    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        raise ConfigError(f"{label}: queue {queue!r} must be ASCII letters, digits and _ : . -")
    entry_name = name if name is not None else wire
    if not isinstance(entry_name, str) or not NAME.fullmatch(entry_name):
        raise ConfigError(f"{label}: name {entry_name!r} must be ASCII letters, digits and _ : . -")
    if not isinstance(catch_up, bool):
        raise ConfigError(f"{label}: catch_up must be true or false, got {catch_up!r}")
    return Entry(name=entry_name, job_class=wire, schedule=schedule, args=list(args),
                 kwargs=dict(kwargs) if kwargs else None, tz=tz, queue=queue,
                 catch_up=catch_up)


def _job(job: Any) -> tuple[type[Job] | None, str]:
    if isinstance(job, JobFunction):
        job = job.job_class
    if isinstance(job, type) and issubclass(job, Job):
        return job, job.wire_name()
    if isinstance(job, str) and job.strip():
        try:
            return registry.lookup(job), job
        except UnknownJobError:
            return None, job  # a job only another process (or Ruby) defines
    raise ConfigError(f"periodic() needs a Job class, an @job function or a job's name, "
                      f"got {job!r}")


def _whole_seconds(every: Seconds) -> Any:
    """``every`` as an int when it is a whole number of seconds, however given (a timedelta,
    30.0), as a timeout or perform_in takes it; anything else as given, for Every to refuse."""
    if isinstance(every, timedelta):
        every = every.total_seconds()
    if isinstance(every, float) and every.is_integer():
        return int(every)
    return every


def _schedule(label: str, expression: str | None, every: Seconds | None,
              tz: str | None) -> cron.Schedule:
    if (expression is None) == (every is None):
        raise ConfigError(f"{label}: give exactly one of cron='...' (e.g. '0 3 * * *') or "
                          f"every=SECONDS")
    try:
        if every is not None:
            if tz is not None:
                raise ConfigError("tz applies to cron schedules; every= counts seconds in "
                                  "any time zone, so leave tz out")
            return cron.Every(_whole_seconds(every))
        assert expression is not None
        return cron.Cron(expression, cron.zone(tz))
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


class FileTable(dict[str, Any]):
    """A ``[[periodic]]`` table that knows the file (or settings) it was read from: the
    worker builds its entry again once the application is imported, when a job's perform
    can first be checked, and that error must name the file too, not just "config file"."""

    source: str = ""


def from_table(table: Any, where: str) -> Entry:
    """An entry from a ``[[periodic]]`` table of a TOML file (``where`` names the file,
    unless the table is a FileTable that knows it)."""
    where = getattr(table, "source", "") or where
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: each [[periodic]] must be a table with name, class and "
                          f"cron or every, got {table!r}")
    unknown = sorted(set(table) - set(TABLE_KEYS))
    if unknown:
        hints = [f"{_meant(key)} for {key}" for key in unknown if _meant(key)]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ConfigError(f"{where}: [[periodic]] {table.get('name', '')!r}: unknown key(s) "
                          f"{', '.join(unknown)}{hint}; the keys are {', '.join(TABLE_KEYS)}")
    if not isinstance(table.get("class"), str):
        raise ConfigError(f"{where}: [[periodic]] {table.get('name', '')!r} needs class = "
                          f"\"the job's name\" (e.g. \"app.jobs.NightlyReport\")")
    try:
        entry = make_entry(table["class"], cron=table.get("cron"), every=table.get("every"),
                           args=table.get("args", []), kwargs=table.get("kwargs"),
                           tz=table.get("tz"), name=table.get("name"),
                           queue=table.get("queue"), catch_up=table.get("catch_up", False))
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return replace(entry, source=f"file {where}")


#: Keys other schedulers use for what a [[periodic]] table calls otherwise.
_OTHER_NAMES = {"timezone": "tz", "time_zone": "tz", "job": "class", "klass": "class",
                "schedule": "cron", "interval": "every", "arguments": "args"}


def _meant(key: str) -> str | None:
    if key in _OTHER_NAMES:
        return _OTHER_NAMES[key]
    close = difflib.get_close_matches(key, TABLE_KEYS, 1)
    return close[0] if close else None


def entries() -> list[Entry]:
    """Every entry registered in this process, by name."""
    with _lock:
        return [_entries[name] for name in sorted(_entries)]


def check_classes(found: list[Entry]) -> None:
    """At a worker's start, with the application imported: an entry whose class name points
    into a module loaded here that defines no such job is a slip, not another process's job
    (every tick would fail in the worker and retry for weeks). Names outside the loaded
    modules (a Ruby class, another service's job) are left alone."""
    for entry in found:
        problem = registry.near_miss(entry.job_class)
        if problem:
            raise ConfigError(f"periodic entry {entry.name!r}: {problem}")


def clear() -> None:
    """Forget every registered entry (tests)."""
    with _lock:
        _entries.clear()
