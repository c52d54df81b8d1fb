"""Queues as a user writes them: ``-q critical,3``, a settings file's list, or Python code,
turned into (name, weight) pairs; config.py validates the result."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from sidequest.errors import ConfigError
from sidequest.options import QUEUE_NAME

log = logging.getLogger("sidequest.config")  # the worker's settings, as a user reads them


def parse_queue(text: str) -> tuple[str, int]:
    """``critical,3`` -> ("critical", 3); ``low`` -> ("low", 0)."""
    name, _, weight = text.partition(",")
    name = name.strip()
    if not weight.strip():
        return name, 0
    try:
        return name, int(weight)
    except ValueError:
        raise ConfigError(f"queue {text!r}: the weight after the comma must be a whole number,"
                          f" e.g. -q {name},3 (\"{name},3\" in the settings file)"
                          f"{_several_queues_hint(name, weight.strip())}") from None


def _several_queues_hint(name: str, after: str) -> str:
    """``-q critical,default`` is two queues in Celery's -Q: say how to give two here."""
    names = [name, *(part.strip() for part in after.split(","))]
    if not all(QUEUE_NAME.fullmatch(part) for part in names):
        return ""
    flags = " ".join(f"-q {part}" for part in names)
    listed = ", ".join(f'"{part}"' for part in names)
    return f"; for several queues repeat -q: {flags} ([{listed}] in the settings file)"


def queue_list(value: Any) -> tuple[tuple[str, Any], ...]:
    """Queues as a settings file or Python code gives them: a list of "name", "name,weight"
    or [name, weight] (a tuple too); one name alone is a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"queues must be a list like [\"critical,3\", \"default\"], got"
                          f" {value!r}")
    return tuple(_queue_entry(item) for item in value)


def _queue_entry(item: Any) -> tuple[str, Any]:
    if isinstance(item, str):
        return parse_queue(item)
    if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
        return item[0], item[1]  # the weight's type is checked by validate()
    raise ConfigError(f"queue entry {item!r} must be \"name\", \"name,weight\" or [name, weight]")


#: A queue name ending in ``:3``, in Sidekiq as here a name: the weight follows a comma.
_COLON_WEIGHT = re.compile(r"(.+):(\d+)")

def warn_of_colon_weights(queues: Iterable[tuple[str, int]]) -> None:
    """``-q critical:3`` is a queue of that name, in Sidekiq as here (a name may hold a
    colon), so it is no error; but it is more likely a weight in the wrong syntax. A queue
    given a weight (``shard:2,1``) has its colon in the name on purpose. Called by the worker
    once its logging is set up, so that the warning is a log line in its format."""
    for name, weight in queues:
        match = _COLON_WEIGHT.fullmatch(name)
        if match and not weight:
            spec = f"{match.group(1)},{match.group(2)}"
            log.warning("queue %r is a queue of that name, not %r with weight %s: a weight "
                        "follows a comma, -q %s (\"%s\" in the settings file)",
                        name, match.group(1), match.group(2), spec, spec)
