"""The worker's configuration: one table of defaults, merged with a TOML file and flags,
validated once and frozen. Pure: no Redis, no threads.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sidequest import connection, shards, sidekiq_settings
from sidequest.errors import ConfigError
from sidequest.morgue import DEAD_MAX_JOBS, DEAD_TIMEOUT
from sidequest.options import QUEUE_NAME
from sidequest.periodic_jobs import FileTable, from_table
from sidequest.queue_specs import queue_list

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Spellings of a level that other tools take (Python's logging and Celery: ``info``,
#: ``warn``): read as the level they mean rather than refused.
_LEVEL_ALIASES = {"WARN": "WARNING"}

#: Settings files read when no -C is given, in this order, as Sidekiq reads
#: config/sidekiq.yml by default (relative to the working directory).
DEFAULT_FILES = ("sidequest.toml", os.path.join("config", "sidequest.toml"))

#: The fewest jobs the default prefetch may hold. The fetcher refills at half the buffer, so
#: this sets how many jobs share one fetch round trip at low concurrency: at -c 1 a cap of 10
#: meant a round (and two thread wake-ups) every 5 jobs, 2.5 context switches a job; 100
#: halves that. The flow still holds only what the threads finish in two round trips.
MIN_PREFETCH = 100

@dataclass(frozen=True)
class Config:
    """Everything a worker process needs; every timer is here so tests can shrink it."""

    require: tuple[str, ...] = ()
    concurrency: int = 5
    #: ``async def perform`` jobs running at once on the process's event loop, beside the
    #: ``concurrency`` threads.
    async_concurrency: int = 100
    #: MB of resident memory past which a process finishes its running jobs and exits for
    #: its supervisor (``-P``, systemd, Kubernetes) to start a fresh one; None: no limit.
    max_memory: int | None = None
    #: Serve this process's Prometheus metrics over HTTP on this port (with ``-P N``, process
    #: i takes ``metrics_port + i``); None: not served. Needs prometheus-client.
    metrics_port: int | None = None
    #: The address the metrics are served on: all interfaces, as exporters do by default.
    metrics_host: str = "0.0.0.0"
    #: (name, weight) pairs; all weights 0 means strict priority in the given order.
    queues: tuple[tuple[str, int], ...] = (("default", 0),)
    timeout: float = 25.0
    tag: str = ""
    labels: tuple[str, ...] = ()
    environment: str = "development"
    redis_url: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    #: ``-v``: log at DEBUG (wins over log_level).
    verbose: bool = False
    #: ``-P``: worker processes forked by one supervisor, each with ``concurrency`` threads.
    processes: int = 1
    #: Seconds between heartbeats (process hash, lease refresh, stats flush, signals).
    heartbeat_interval: float = 5.0
    #: A process whose lease is this old is dead and its in-progress jobs are recovered.
    lease_ttl: float = 20.0
    reaper_interval: float = 5.0
    #: Average seconds between scheduler polls across all processes (Sidekiq's default 5).
    poll_interval: float = 5.0
    #: Seconds before a process's first scheduler poll (Sidekiq's 10): time for the heartbeats
    #: of processes started together to register, since the poll interval is spread by their
    #: count. A random share of ``poll_interval`` is added so they do not all poll at once.
    initial_poll_wait: float = 10.0
    #: Longest a fetcher blocks in Redis before checking for shutdown.
    fetch_timeout: float = 2.0
    #: How long an idle fetcher with several queues waits on the first before rescanning all.
    idle_wait: float = 0.1
    #: Most jobs fetched ahead of need and held besides the running ones (None: ten times
    #: ``concurrency``, at least ``MIN_PREFETCH``). The worker holds only what keeps its
    #: threads fed across one Redis round trip (rate x round trip x 2), so slow jobs are not
    #: hoarded; held jobs are in the process's in-progress list, so a crash loses none, and a
    #: stop puts them back.
    prefetch: int | None = None
    #: Let fewer threads take jobs while the jobs are short and compute-bound, so that they
    #: do not queue for the interpreter lock (worker/flow.py); False: always all of them.
    adaptive_threads: bool = True
    #: Run the worker under Linux's SCHED_BATCH policy (worker/threads.py): a thread it wakes
    #: waits for the running one's time slice instead of preempting it, so the worker yields
    #: to the other programs of its host (a web server beside it). It costs throughput (about
    #: 6% in a 10-thread drain), hence off by default. Ignored where the OS has no such policy.
    batch_scheduling: bool = False
    max_retries: int = 25
    #: Process deaths with the job in flight before it goes to the dead set (poison pill).
    max_deaths: int = 3
    dead_max_jobs: int = DEAD_MAX_JOBS
    dead_timeout: float = DEAD_TIMEOUT
    #: ``[[periodic]]`` tables of the TOML file (checked when read; registered by the worker).
    periodic: tuple[dict[str, Any], ...] = ()
    #: Seconds a periodic tick may be late and still be pushed (a worker restarting, Redis
    #: briefly away); older ticks were missed: skipped, or run once with ``catch_up``.
    periodic_grace: float = 60.0
    #: Further Redis servers by name (``[shards]``: name = URL) and the queues routed to them
    #: (``[shard_queues]``: queue = shard name); other queues stay on ``redis_url``, the
    #: ``default`` shard. Empty: ``$SIDEQUEST_SHARDS``, or one Redis.
    shards: Mapping[str, str] = field(default_factory=dict)
    shard_queues: Mapping[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def _validate_limits(self) -> None:
        _positive_int("async_concurrency", self.async_concurrency, 100_000)
        if self.max_memory is not None:
            _positive_int("max_memory", self.max_memory, 10**7)
        if self.metrics_port is not None:
            _positive_int("metrics_port", self.metrics_port, 65535 - self.processes + 1)
        if not isinstance(self.metrics_host, str) or not self.metrics_host:
            raise ConfigError(f"metrics_host must be an address such as 127.0.0.1, "
                              f"got {self.metrics_host!r}")

    @property
    def strict(self) -> bool:
        return all(weight == 0 for _, weight in self.queues)

    @property
    def prefetch_count(self) -> int:
        if self.prefetch is None:
            return max(10 * self.concurrency, MIN_PREFETCH)
        return self.prefetch

    @property
    def queue_names(self) -> list[str]:
        return [name for name, _ in self.queues]

    def validate(self) -> Config:
        self._validate_texts()
        self._validate_numbers()
        self._validate_queues()
        shards.build(self.shards, self.shard_queues)
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log level {self.log_level!r}: use one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log format {self.log_format!r}: choose text or json")
        return self

    def _validate_texts(self) -> None:
        for name in ("tag", "environment", "metrics_host", "log_level", "log_format"):
            value = getattr(self, name)
            # A tag of None is no tag, as before (a framework's settings may say so).
            if not isinstance(value, str) and not (name == "tag" and value is None):
                raise ConfigError(f"{name} must be a string, got {value!r}")
        for name in ("require", "labels"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list, set, frozenset)) or not all(
                    isinstance(v, str) for v in value):
                raise ConfigError(f"{name} must be a string or a list of strings, got {value!r}")

    def _validate_numbers(self) -> None:
        _positive_int("concurrency", self.concurrency, 1000)
        self._validate_limits()
        if isinstance(self.processes, bool) or not isinstance(self.processes, int) or not (
            1 <= self.processes <= 64
        ):
            raise ConfigError(f"processes (-P) must be from 1 to 64, got {self.processes!r}")
        if not isinstance(self.verbose, bool):
            raise ConfigError(f"verbose must be true or false, got {self.verbose!r}")
        _positive_int("max_deaths", self.max_deaths, 1000)
        _positive_int("dead_max_jobs", self.dead_max_jobs, 10**9)
        if self.prefetch is not None and (
            isinstance(self.prefetch, bool) or not isinstance(self.prefetch, int)
            or not 0 <= self.prefetch <= 10_000
        ):
            raise ConfigError(f"prefetch must be a whole number from 0 to 10000, got "
                              f"{self.prefetch!r}")
        _flag("adaptive_threads", self.adaptive_threads)
        _flag("batch_scheduling", self.batch_scheduling)
        wait = self.initial_poll_wait
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < 3600:
            raise ConfigError(f"initial_poll_wait must be a number of seconds from 0 to 3600, "
                              f"got {wait!r}")
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"max_retries must be a whole number >= 0, got {retries!r}")
        for name in ("timeout", "heartbeat_interval", "lease_ttl", "reaper_interval",
                     "poll_interval", "fetch_timeout", "idle_wait", "dead_timeout",
                     "periodic_grace"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.lease_ttl < 2 * self.heartbeat_interval:
            raise ConfigError(
                f"lease_ttl ({self.lease_ttl}s) must be at least twice heartbeat_interval"
                f" ({self.heartbeat_interval}s), or one slow beat would make a live process look"
                " dead"
            )

    def _validate_queues(self) -> None:
        if not self.queues:
            raise ConfigError("no queues to work on; give at least one -q NAME")
        seen: set[str] = set()
        for name, weight in self.queues:
            if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
                raise ConfigError(f"queue {name!r}: use ASCII letters, digits and _ : . - only")
            if name in seen:
                raise ConfigError(f"queue {name!r} is given twice; give it once, with a weight")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise ConfigError(
                    f"queue {name!r}: weight must be a whole number >= 0, got {weight!r}"
                )
            seen.add(name)


def _positive_int(name: str, value: Any, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ConfigError(f"{name} must be a whole number from 1 to {limit}, got {value!r}")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


def level_name(text: str) -> str:
    """``--log-level`` or a settings file's ``log_level`` as written: ``info`` is INFO,
    ``warn`` WARNING. Anything else is returned upper-cased, to be refused."""
    upper = text.strip().upper()
    return _LEVEL_ALIASES.get(upper, upper)


def settings_arg(value: str) -> str:
    """The -C flag's value (argparse ``type=``): an empty one (``-C "$CONFIG"`` with the
    variable unset) read no file at all, silently."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty file name (an unset variable?): give the"
                                         " settings file's path, or leave -C out")
    return value


def default_file() -> str | None:
    """The settings file read when no -C is given: ./sidequest.toml, else
    ./config/sidequest.toml, as written in the log; None when neither is there."""
    for name in DEFAULT_FILES:
        if Path(name).is_file():
            return os.path.join(".", name)
    return None


def _queues_from_file(value: Any, path: Path) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: queues must be a list like [\"critical,3\", \"default\"]")
    try:
        return queue_list(value)
    except ConfigError as exc:  # parse_queue serves -q too, which has no file to name
        raise ConfigError(f"{path}: {exc}") from None


#: The names a settings file (or a framework's settings mapping) may use.
SETTINGS = frozenset(f.name for f in fields(Config)) - {"extra"}

def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML config file into Config field values; unknown keys are errors."""
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {file} is a directory: name the TOML file in it,"
                          f" e.g. -C {file / 'sidequest.toml'}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {file} is not UTF-8 text (byte {exc.start}): save it"
                          " as UTF-8 TOML") from None
    except OSError as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc.strerror}") from None
    # A Sidekiq user passes sidekiq.yml first: say what Sidequest reads, and show it.
    if file.suffix.lower() in (".yml", ".yaml"):
        raise ConfigError(sidekiq_settings.yaml_error(file, text, SETTINGS))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if sidekiq_settings.looks_like_yaml(text):
            raise ConfigError(sidekiq_settings.yaml_error(file, text, SETTINGS)) from None
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    return from_mapping(data, file)


def connect_as_file(path: str | None, redis_url: str | None) -> None:
    """Reach Redis as the worker given the TOML file ``path`` does (its ``redis_url`` and
    shard table), for the commands that read what workers write; a URL given on the command
    line wins over the file's. Without a file, only that URL (if any) is set."""
    if path:
        values = load_file(path)
        connection.configure(redis_url or values.get("redis_url"),
                             shards=values.get("shards"), shard_queues=values.get("shard_queues"))
    elif redis_url:
        connection.configure(redis_url)
    connection.shard_map()  # a bad $SIDEQUEST_SHARDS is reported now, not at the first page


def from_mapping(data: Mapping[str, Any], source: str | os.PathLike[str]) -> dict[str, Any]:
    """Config field values from a mapping with the TOML file's keys (a file, or a framework's
    settings such as Django's ``SIDEQUEST``); unknown keys are errors naming ``source``."""
    values: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key not in SETTINGS:
            hint = sidekiq_settings.unknown_hint(key, value, SETTINGS)
            raise ConfigError(f"{source}: unknown setting {key!r}; {hint}")
        values[key] = _file_value(key, value, Path(source))
    return values


def _file_value(key: str, value: Any, file: Path) -> Any:
    if key == "queues":
        return _queues_from_file(value, file)
    if key == "periodic":
        if not isinstance(value, list):
            raise ConfigError(f"{file}: write periodic jobs as [[periodic]] tables")
        for table in value:
            from_table(table, str(file))  # a bad entry fails now, naming the file
        return tuple(_file_table(table, file) for table in value)
    if key in ("require", "labels"):
        # A list of strings, or one string; anything else is for validate() to name.
        return tuple([value] if isinstance(value, str) else value) if isinstance(
            value, (str, list)) else value
    if key == "log_level" and isinstance(value, str):
        return level_name(value)  # "info" and "warn" as --log-level takes them
    return value


def _file_table(table: dict[str, Any], file: Path) -> FileTable:
    out = FileTable(table)
    out.source = str(file)  # for the worker's second check, once the jobs are imported
    return out


#: How validate() speaks of settings whose name its messages do not spell out (they serve
#: the command line too): a message starting so is about that setting.
_SPOKEN = {"queues": "queue ", "log_level": "log level ", "log_format": "log format "}


def _about(message: str, keys: Iterable[str]) -> bool:
    """Whether a validation message is about one of the settings ``keys``."""
    return any(key in message or message.startswith(_SPOKEN.get(key, key)) for key in keys)


def build(file: str | None = None, *, base: Mapping[str, Any] | None = None,
          base_source: str = "", **overrides: Any) -> Config:
    """Defaults, then ``base`` (values from ``from_mapping``, e.g. a framework's settings,
    named ``base_source`` in errors), then the file, then non-None overrides (the command
    line), validated."""
    from_base: dict[str, Any] = dict(base or {})
    from_file: dict[str, Any] = load_file(file) if file else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    if "queues" in given:  # from code (an embed, a test): the forms a settings file takes
        given["queues"] = queue_list(given["queues"])
    values = {**from_base, **from_file, **given}
    layers = (from_base, from_file, given)  # later wins

    def layer(key: str) -> int:
        return max((n for n, layer in enumerate(layers) if key in layer), default=-1)

    # verbose means a DEBUG log level, unless a log level was set by a layer that wins over
    # it (`-C file-with-verbose.toml --log-level WARNING`: the flag wins, as flags do).
    if values.get("verbose") is True and layer("verbose") >= layer("log_level"):
        values["log_level"] = "DEBUG"
    try:
        config = Config(**values).validate()
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    except ConfigError as exc:
        # A bad value from the file (or the settings): name it, so the user knows where to
        # look.
        if _about(str(exc), set(from_file) - set(given)):
            raise ConfigError(f"{file}: {exc}") from None
        if base_source and _about(str(exc), set(from_base) - set(from_file) - set(given)):
            raise ConfigError(f"{base_source}: {exc}") from None
        raise
    return config


__all__ = ["Config", "build", "default_file", "from_mapping", "level_name", "load_file",
           "replace", "settings_arg"]
