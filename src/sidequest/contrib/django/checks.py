"""System checks (``manage.py check``): is ``SIDEQUEST`` set under its name, and can the
database connections serve the worker?

A misspelt settings name (``SIDEKIQ``, ``SIDE_QUEST``) is ignored by Django without a word,
and the worker and the pushes then use the defaults: the first check names it.

Each worker thread holds its own connection while a job runs (Django's connections are per
thread), so a process needs up to ``concurrency`` of them, plus one for ``async def`` jobs'
ORM calls. A connection pool smaller than that makes jobs wait for a connection and fail
with the pool's timeout; persistent connections (``CONN_MAX_AGE`` not 0) without
``CONN_HEALTH_CHECKS`` make the first job of each thread after a database restart fail on
the dead connection (it is replaced only after that error).
"""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning

from sidequest import config
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


def connections_for_concurrency(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        worker = conf.worker_config()
    except ConfigError:
        return []  # reported by the app itself when Django starts
    needed = worker.concurrency + 1
    messages: list[CheckMessage] = []
    for alias, database in settings.DATABASES.items():
        messages.extend(_pool(alias, database, worker.concurrency, needed))
        messages.extend(_persistent(alias, database))
    return messages


def _pool(alias: str, database: dict[str, Any], concurrency: int,
          needed: int) -> list[CheckMessage]:
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
             f"more, or lower SIDEQUEST['concurrency']",
        id="sidequest.W001",
    )]


def _persistent(alias: str, database: dict[str, Any]) -> list[CheckMessage]:
    age = database.get("CONN_MAX_AGE", 0)
    if age == 0 or database.get("CONN_HEALTH_CHECKS"):
        return []
    return [Warning(
        f"DATABASES[{alias!r}] keeps connections open (CONN_MAX_AGE={age!r}) without "
        f"CONN_HEALTH_CHECKS: after a database restart, the next job of every Sidequest "
        f"worker thread fails on its dead connection before it is replaced",
        hint=f"set DATABASES[{alias!r}]['CONN_HEALTH_CHECKS'] = True, or CONN_MAX_AGE = 0",
        id="sidequest.W002",
    )]
