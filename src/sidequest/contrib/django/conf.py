"""The ``SIDEQUEST`` settings dict: the TOML config file's keys (``redis_url``,
``concurrency``, ``queues``, ...; upper case is accepted too), checked by the same code, so a
misspelt key gets the same "did you mean" error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from sidequest import config
from sidequest.errors import ConfigError

SOURCE = "settings.SIDEQUEST"


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
