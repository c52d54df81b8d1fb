"""System checks (``manage.py check``): is ``SIDEQUEST`` set under its name, and can the
database connections serve the worker?

A misspelt settings name (``SIDEKIQ``, ``SIDE_QUEST``) is ignored by Django without a word,
and the worker and the pushes then use the defaults: the first check names it.

Each worker thread holds its own connection while a job runs (Django's connections are per
thread), so a process needs up to ``concurrency`` of them, plus one for ``async def`` jobs'
ORM calls. A connection pool smaller than that makes jobs wait for a connection and fail
with the pool's timeout; persistent connections (``CONN_MAX_AGE`` not 0) without
``CONN_HEALTH_CHECKS`` make the first job of each thread after a database restart fail on
the dead connection (it is replaced only after that error; SQLite, a file with no server to
restart, is left out). Under ``manage.py sidequest`` the concurrency judged is the one the
worker runs with (its ``-c`` flag, its ``-C`` file), not only the settings': each process,
``-P`` children included, has a pool of its own.

A bad ``SIDEQUEST`` is an error here (the app keeps it rather than stopping Django's startup
with a traceback); and a queue the task backend routes tasks to that the workers do not
serve by default is a warning: those tasks would wait there for ever.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from sidequest import config, registry
from sidequest.contrib.django import conf
from sidequest.errors import ConfigError

#: psycopg_pool's default ``max_size`` (Django passes ``"pool": True`` through as no options).
DEFAULT_POOL_SIZE = 4


#: Names a misnamed SIDEQUEST setting has that its spelling is too far from SIDEQUEST for.
LOOKALIKES = frozenset({"SIDEKIQ"})
#: Close enough to be SIDEQUEST misspelt: SIDE_QUEST, SIDEQEUST, SIDEQUEST_CONFIG (0.72),
#: but not an unrelated name such as SECURE_HSTS (0.6).
CLOSE = 0.65


def settings_name(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A name like SIDEQUEST set instead of it, which nothing reads."""
    if hasattr(settings, "SIDEQUEST"):
        return []
    names = sorted(name for name in dir(settings) if name.isupper())
    # SIDEQUEST_*: nothing reads such a setting either (SIDEQUEST_REDIS_URL is a variable of
    # the environment, not of settings.py).
    found = [name for name in names if name in LOOKALIKES or name.startswith("SIDEQUEST_")]
    found += difflib.get_close_matches("SIDEQUEST", names, n=3, cutoff=CLOSE)
    return [Warning(
        f"settings.{name} is set but settings.SIDEQUEST is not: Sidequest reads its settings "
        f"from SIDEQUEST only, so {name} is ignored and the worker and the pushes use the "
        f"defaults ($SIDEQUEST_REDIS_URL, else $REDIS_URL, else redis://localhost:6379/0)",
        hint=_rename_hint(name),
        id="sidequest.W003",
    ) for name in dict.fromkeys(found)]


def _rename_hint(name: str) -> str:
    setting = name.lower().removeprefix("sidequest_")
    if name.startswith("SIDEQUEST_") and setting in config.SETTINGS:
        # SIDEQUEST_REDIS_URL = "...": one setting of the dict, written on its own.
        return f"write it in the SIDEQUEST dict: SIDEQUEST = {{{setting!r}: ...}}"
    return f"rename {name} to SIDEQUEST"


def settings_valid(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A bad SIDEQUEST (a misspelt key, a wrong value): the config file's message, with its
    "did you mean", instead of a traceback out of Django's startup."""
    try:
        conf.worker_config()
    except ConfigError as exc:
        return [Error(str(exc), hint="fix settings.SIDEQUEST; until then, every push and "
                                     "the dashboard of a process raise this error",
                      id="sidequest.E001")]
    try:
        conf.dashboard_permission()
    except ConfigError as exc:
        return [Error(str(exc), hint="until it is fixed, the dashboard answers with this"
                                     " error; pushes and the worker are not affected",
                      id="sidequest.E003")]
    return []


#: Where the concurrency comes from when the settings set it.
SETTING = "SIDEQUEST['concurrency']"


def connections_for_concurrency(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if conf.command is not None:  # manage.py sidequest: what it will run with
        worker, source = conf.command.config, conf.command.concurrency_from
    else:
        try:
            worker, source = conf.worker_config(), SETTING
        except ConfigError:
            return []  # sidequest.E001
    needed = worker.concurrency + 1
    messages: list[CheckMessage] = []
    for alias, database in settings.DATABASES.items():
        messages.extend(_pool(alias, database, worker.concurrency, needed, source))
        messages.extend(_persistent(alias, database))
    return messages


def _pool(alias: str, database: dict[str, Any], concurrency: int,
          needed: int, source: str = SETTING) -> list[CheckMessage]:
    pool = (database.get("OPTIONS") or {}).get("pool")
    if not pool:
        return []
    size = pool.get("max_size", DEFAULT_POOL_SIZE) if isinstance(pool, dict) else (
        DEFAULT_POOL_SIZE)
    if size >= needed:
        return []
    return [Warning(
        f"DATABASES[{alias!r}] has a connection pool of at most {size} connections, but a "
        f"Sidequest worker process runs {concurrency} jobs at once (each thread holds a "
        f"connection, and async jobs one more): jobs will wait for a connection and fail "
        f"with the pool's timeout",
        hint=f"set DATABASES[{alias!r}]['OPTIONS']['pool'] = {{'max_size': {needed}}} or "
             f"more, or lower {source}",
        id="sidequest.W001",
    )]


def _persistent(alias: str, database: dict[str, Any]) -> list[CheckMessage]:
    age = database.get("CONN_MAX_AGE", 0)
    if age == 0 or database.get("CONN_HEALTH_CHECKS") or _is_sqlite(database):
        return []
    return [Warning(
        f"DATABASES[{alias!r}] keeps connections open (CONN_MAX_AGE={age!r}) without "
        f"CONN_HEALTH_CHECKS: after a database restart, the next job of every Sidequest "
        f"worker thread fails on its dead connection before it is replaced",
        hint=f"set DATABASES[{alias!r}]['CONN_HEALTH_CHECKS'] = True, or CONN_MAX_AGE = 0",
        id="sidequest.W002",
    )]


def _is_sqlite(database: dict[str, Any]) -> bool:
    """SQLite is a file opened by the process: no server restarts under an open connection,
    so a persistent one never goes dead (Django's backend, or a project's own subclass)."""
    return str(database.get("ENGINE", "")).endswith("sqlite3")


#: A task backend's queues when its QUEUES is not set (django.tasks' DEFAULT_TASK_QUEUE_NAME;
#: not imported: on Django 5.2 it is the backport's, which may not be installed).
DEFAULT_TASK_QUEUES = ("default",)


def _served() -> tuple[tuple[str, ...], str] | None:
    """The queues a worker started with the settings serves, and how a message names them;
    None when the settings are wrong (sidequest.E001 says so)."""
    try:
        served = tuple(conf.worker_config().queue_names)
        listed = "queues" in conf.values()
    except ConfigError:
        return None
    where = (f"SIDEQUEST['queues'] ({', '.join(map(repr, served))})" if listed else
             "the queues the worker serves by default ('default': SIDEQUEST['queues'] is not "
             "set)")
    return served, where


def task_queues_served(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A queue a SidequestBackend sends tasks to (its QUEUES, its PRIORITY_QUEUES targets)
    that the worker does not serve with the settings' queues: its tasks would wait in Redis
    for ever, and nothing else says so."""
    found = _served()
    if found is None:
        return []  # sidequest.E001
    served, where = found
    tasks = getattr(settings, "TASKS", None)
    messages: list[CheckMessage] = []
    for alias, params in (tasks.items() if isinstance(tasks, dict) else ()):
        if not isinstance(params, dict) or "sidequest.contrib.django" not in str(
                params.get("BACKEND", "")):
            continue
        for queue, via in _task_queues(params).items():
            if queue in served:
                continue
            messages.append(Warning(
                f"TASKS[{alias!r}] sends tasks to queue {queue!r} (its {via}), but that queue "
                f"is not among {where}: a worker started with the settings' queues never "
                f"runs those tasks, and they wait in Redis",
                hint=f"add {queue!r} to SIDEQUEST['queues'] beside the queues served now, or "
                     f"change TASKS[{alias!r}]'s {via}; if a worker of its own serves it "
                     f"(python manage.py sidequest -q {queue}), silence this with "
                     f"SILENCED_SYSTEM_CHECKS = ['sidequest.W004']",
                id="sidequest.W004",
            ))
    return messages


def job_queues_served(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A job class of the project (a module of an installed app) whose queue the worker
    does not serve with the settings' queues: its jobs would wait in Redis for ever (a
    Celery project's task_routes moved over, one queue left out of SIDEQUEST['queues']).
    Not when manage.py sidequest runs the checks: its own queues (-q) are what it serves."""
    if conf.command is not None:
        return []
    found = _served()
    if found is None:
        return []  # sidequest.E001
    served, where = found
    return [Warning(
        f"job class {cls.wire_name()} goes to queue {cls.queue!r}, which is not among {where}:"
        f" a worker started with the settings' queues never runs its jobs, and they wait in"
        f" Redis",
        hint=f"add {cls.queue!r} to SIDEQUEST['queues'] beside the queues served now; if a"
             f" worker of its own serves it (python manage.py sidequest -q {cls.queue}),"
             f" silence this with SILENCED_SYSTEM_CHECKS = ['sidequest.W005']",
        id="sidequest.W005",
    ) for cls in sorted(registry.all_jobs(), key=lambda c: c.wire_name())
        if cls.queue not in served and not cls.__module__.startswith("sidequest.")
        and apps.get_containing_app_config(cls.__module__) is not None]


def _task_queues(params: dict[str, Any]) -> dict[str, str]:
    """The queues a backend's settings route tasks to, each with the setting naming it.
    A malformed setting names none here: the backend raises its own error when used."""
    found: dict[str, list[str]] = {}
    queues = params.get("QUEUES", DEFAULT_TASK_QUEUES)
    named = "QUEUES" if "QUEUES" in params else "QUEUES (not set: ['default'])"
    # An empty QUEUES lets a task name any queue: none is known in advance.
    for queue in queues if isinstance(queues, (list, tuple, set)) else ():
        found.setdefault(str(queue), []).append(named)
    options = params.get("OPTIONS") or {}
    options = {str(k).upper(): v for k, v in options.items()} if isinstance(options, dict) else {}
    try:
        targets = [str(queue) for _, queue in options.get("PRIORITY_QUEUES", ())]
    except (TypeError, ValueError):
        targets = []
    for queue in targets:
        found.setdefault(queue, []).append("OPTIONS['PRIORITY_QUEUES']")
    return {queue: " and ".join(dict.fromkeys(via)) for queue, via in found.items()}
