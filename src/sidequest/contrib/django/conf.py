"""The ``SIDEQUEST`` settings dict: the TOML config file's keys (``redis_url``,
``concurrency``, ``queues``, ...; upper case is accepted too), checked by the same code, so a
misspelt key gets the same "did you mean" error.

A bad ``SIDEQUEST`` does not stop Django's startup with a traceback: the app keeps the error
(``problem``), the system checks report it (``sidequest.E001``), ``manage.py sidequest``
prints it and exits 2, and a push or a dashboard page of the process raises it, so a web
process that does not run the checks still fails at its first use of Sidequest instead of
pushing to the default Redis."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from sidequest import config
from sidequest.errors import ConfigError

SOURCE = "settings.SIDEQUEST"

#: The error ``SIDEQUEST`` gave when the app started (None: the settings are good).
problem: ConfigError | None = None


@dataclass(frozen=True)
class Command:
    """What ``manage.py sidequest`` will run with (its flags and -C file over the settings),
    set by the command before its system checks, so that the pool check judges the
    concurrency the worker really runs with. ``concurrency_from``: where that number was
    set, for the check's hint to say what to lower."""

    config: config.Config
    concurrency_from: str


#: Set in the worker command's process only; None elsewhere (the checks read the settings).
command: Command | None = None


def values() -> dict[str, Any]:
    """The ``SIDEQUEST`` setting as Config field values (empty when it is not set)."""
    raw = getattr(settings, "SIDEQUEST", None) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{SOURCE} must be a dict like {{'redis_url': "
                          f"'redis://localhost:6379/0', 'concurrency': 10}}, got {raw!r}")
    return config.from_mapping({str(k).lower(): v for k, v in raw.items()}, SOURCE)


def worker_config() -> config.Config:
    """The settings alone, validated (what the system check and the app use)."""
    return config.build(base=values(), base_source=SOURCE)


def raise_problem() -> None:
    """Raise the error of a bad ``SIDEQUEST`` found at startup; nothing when it was good."""
    if problem is not None:
        # A new exception each time: raising the kept one again would grow its traceback
        # with every push of a long-running process.
        raise ConfigError(str(problem))
