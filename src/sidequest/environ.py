"""The environment variables Sidequest reads, named in one place, and a check for names that
look like one of them but are not: a misspelt ``SIDEQUEST_REDIS_URL`` is otherwise ignored
without a word, and the process quietly talks to the default Redis instead."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

PREFIX = "SIDEQUEST_"
REDIS_URL = "SIDEQUEST_REDIS_URL"
#: Read after SIDEQUEST_REDIS_URL: the name most hosting platforms set.
PLAIN_REDIS_URL = "REDIS_URL"
SHARDS = "SIDEQUEST_SHARDS"
SHARD_QUEUES = "SIDEQUEST_SHARD_QUEUES"
WEB_PASSWORD = "SIDEQUEST_WEB_PASSWORD"
WEB_SECRET = "SIDEQUEST_WEB_SECRET"
PROMETHEUS_TOKEN = "SIDEQUEST_PROMETHEUS_TOKEN"
#: Set by the worker from -e/--environment, for the application to read.
APP_ENV = "SIDEQUEST_ENV"

KNOWN = (REDIS_URL, SHARDS, SHARD_QUEUES, WEB_PASSWORD, WEB_SECRET, PROMETHEUS_TOKEN, APP_ENV)


def near_misses(env: Mapping[str, str]) -> list[str]:
    """A warning for each ``SIDEQUEST_*`` variable that is not one Sidequest reads but is
    close to one. Names far from every known one are left alone: an application may keep
    settings of its own under the prefix."""
    warnings = []
    for name in sorted(env):
        if not name.upper().startswith(PREFIX) or name in KNOWN:
            continue
        close = difflib.get_close_matches(name.upper(), KNOWN, n=1, cutoff=0.8)
        if close:
            warnings.append(f"${name} is set but Sidequest does not read it; did you mean"
                            f" ${close[0]}?")
    return warnings
