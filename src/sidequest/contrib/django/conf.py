"""The ``SIDEQUEST`` settings dict: the TOML config file's keys (``redis_url``,
``concurrency``, ``queues``, ...; upper case is accepted too), checked by the same code, so a
misspelt key gets the same "did you mean" error; and one key of Django's own,
``dashboard_permission``, the permission the dashboard requires instead of ``is_staff``.

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

from sidequest import config, sidekiq_settings
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


#: Keys of ``SIDEQUEST`` that only this integration reads (the worker has no such setting),
#: checked here and kept out of the worker's Config.
DJANGO_KEYS = frozenset({"dashboard_permission"})

#: What ``dashboard_permission`` takes, for its error.
PERMISSION_FORM = (f"{SOURCE}['dashboard_permission'] must be a permission name as"
                   " user.has_perm() takes it, 'app_label.codename' (such as"
                   " 'auth.change_user'), or be left out to let every staff user in")


def values() -> dict[str, Any]:
    """The ``SIDEQUEST`` setting as Config field values (empty when it is not set); its
    Django-only keys are checked, and left out."""
    raw = _lowered()
    # Not dashboard_permission() here: a bad one refuses the dashboard (and check E003
    # names it), never every push and the worker.
    known = config.SETTINGS | DJANGO_KEYS
    for key, value in raw.items():
        if key not in known:
            # Said here rather than by from_mapping, whose "did you mean" knows no Django key.
            hint = sidekiq_settings.unknown_hint(key, value, known)
            raise ConfigError(f"{SOURCE}: unknown setting {key!r}; {hint}")
    return config.from_mapping({k: v for k, v in raw.items() if k not in DJANGO_KEYS}, SOURCE)


def _lowered() -> dict[str, Any]:
    raw = getattr(settings, "SIDEQUEST", None) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{SOURCE} must be a dict like {{'redis_url': "
                          f"'redis://localhost:6379/0', 'concurrency': 10}}, got {raw!r}")
    # As from_mapping spells them (upper case and dashes taken), for DJANGO_KEYS to match.
    return {str(k).lower().replace("-", "_"): v for k, v in raw.items()}


def dashboard_permission() -> str | None:
    """The permission a user needs to see the dashboard (``SIDEQUEST['dashboard_permission']``);
    None when it is not set, and then staff users see it."""
    value = _lowered().get("dashboard_permission")
    if value is None:
        return None
    # has_perm() takes any string and answers False to a malformed one: a user refused with
    # no word of why, where this says what to write.
    app_label, _, codename = value.partition(".") if isinstance(value, str) else ("", "", "")
    if not (app_label.strip() and codename.strip()) or value != value.strip():
        raise ConfigError(f"{PERMISSION_FORM}; got {value!r}")
    return str(value)


def worker_config() -> config.Config:
    """The settings alone, validated (what the system check and the app use)."""
    return config.build(base=values(), base_source=SOURCE)


def raise_problem() -> None:
    """Raise the error of a bad ``SIDEQUEST`` found at startup; nothing when it was good."""
    if problem is not None:
        # A new exception each time: raising the kept one again would grow its traceback
        # with every push of a long-running process.
        raise ConfigError(str(problem))
