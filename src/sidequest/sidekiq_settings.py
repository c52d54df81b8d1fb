"""What to tell a Sidekiq user whose settings file is Sidekiq's: the settings Sidequest lacks
or names otherwise, per-environment sections, and a sidekiq.yml turned into the TOML that
Sidequest reads (by a line scan: a hint needs no YAML parser). Pure: no Redis."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Where the README lists the settings (a bold paragraph, so the anchor is the section's).
SETTINGS_DOC = ("the README's \"Running workers\" section (#running-workers), under "
                "\"Settings file\"")

_PROCESS_MANAGER = "run the worker under systemd or another process manager"

#: Sidekiq 6.4 settings that Sidequest lacks or names otherwise, and what to write instead.
SIDEKIQ_ONLY = {
    "pidfile": f"Sidekiq 6 removed it too: {_PROCESS_MANAGER}, which keeps its pid",
    "logfile": f"Sidekiq 6 removed it too: the worker logs to standard output; "
               f"{_PROCESS_MANAGER}, which keeps the log (or redirect it: sidequest ... >> "
               "worker.log)",
    "daemon": f"Sidekiq 6 removed it too: {_PROCESS_MANAGER}, in the foreground",
    "strict": "the queue order is strict when no queue has a weight: write queues = "
              "[\"critical\", \"low\"]; weights make it weighted: [\"critical,3\", \"low,1\"]",
    "average_scheduled_poll_interval": "write poll_interval (seconds between scheduler polls, "
                                       "averaged over all processes)",
    "poll_interval_average": "write poll_interval (seconds between scheduler polls, averaged "
                             "over all processes, as Sidekiq's average_scheduled_poll_interval)",
    "dead_timeout_in_seconds": "write dead_timeout (seconds)",
    "schedule": "write periodic jobs as [[periodic]] tables (README: \"Periodic jobs\")",
    "scheduler": "write periodic jobs as [[periodic]] tables (README: \"Periodic jobs\")",
}

_SHUTDOWN_TIMEOUT = ("did you mean 'timeout'? It is the seconds a stopping worker waits for "
                     "its running jobs before it puts them back in their queues (-t, 25 by "
                     "default)")
_JOB_TIME_LIMIT = ("a job's time limit is the job option timeout (timeout = 30 on the Job "
                   "class, or .set(timeout=30)), not a setting; the setting timeout is the "
                   "seconds a stopping worker waits for its running jobs (-t)")
_THREADS = "did you mean 'concurrency'? It is the threads of each worker process (-c)"
_WORKERS = ("did you mean 'processes'? It is the worker processes (-P), each running "
            "concurrency threads (-c)")
_REDIS_URL = "did you mean 'redis_url'? Write the whole URL: redis_url = \"redis://host:6379/0\""

#: Names that users of Sidekiq, Celery, RQ or Gunicorn reach for, and what Sidequest calls
#: them. difflib answers several with a harmful neighbour: shutdown_timeout with dead_timeout
#: (which would empty the dead set within seconds), threads with shards.
OTHER_NAMES = {
    **dict.fromkeys(("shutdown_timeout", "graceful_timeout", "graceful_shutdown_timeout",
                     "stop_timeout", "kill_timeout", "drain_timeout", "term_timeout",
                     "sigterm_timeout", "shutdown_wait", "grace_period",
                     "shutdown_grace_period", "timeout_seconds"), _SHUTDOWN_TIMEOUT),
    **dict.fromkeys(("job_timeout", "task_timeout", "time_limit", "task_time_limit",
                     "soft_time_limit", "task_soft_time_limit", "hard_timeout"),
                    _JOB_TIME_LIMIT),
    **dict.fromkeys(("threads", "max_threads", "num_threads", "thread_count"), _THREADS),
    **dict.fromkeys(("workers", "num_workers", "worker_count"), _WORKERS),
    **dict.fromkeys(("url", "redis_host", "redis_uri"), _REDIS_URL),
    "log_file": SIDEKIQ_ONLY["logfile"],
}

#: Settings that decide how long failed jobs are kept: suggested for a misspelt name only
#: when it says "dead", since a guess there deletes jobs (dead_timeout = 5 for a shutdown
#: timeout would drop each dead job after 5 seconds).
_SAID_ONLY = {"dead_timeout": "dead", "dead_max_jobs": "dead"}

#: Sidekiq's settings that Sidequest has under another name, for the YAML translation.
SIDEKIQ_RENAMED = {"average_scheduled_poll_interval": "poll_interval",
                   "dead_timeout_in_seconds": "dead_timeout"}

ENVIRONMENTS = frozenset({"production", "staging", "development", "test"})
ENVIRONMENT_HINT = (
    "Sidequest has no per-environment sections: keep one settings file per environment "
    "(sidequest -C {name}.toml) with the settings at its top level; -e/--environment only "
    "names the environment, it picks no section")

#: A line of Sidekiq's YAML (``:concurrency: 4``): no TOML statement starts with a colon.
SIDEKIQ_KEY_LINE = re.compile(r"^[ \t]*:[A-Za-z_]\w*:([ \t]|$)", re.MULTILINE)

#: The README's settings file example, shown when a Sidekiq file cannot be translated.
EXAMPLE_TOML = """\
require = ["app.jobs"]
concurrency = 10
queues = ["critical,3", "default,2", "low,1"]
timeout = 25
"""

_YAML_KEY = re.compile(r"(\s*):?([A-Za-z_]\w*):(?:\s+(.*))?")
_YAML_ITEM = re.compile(r"\s*-\s+(.*)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_MODULE = re.compile(r"[A-Za-z_][\w.]*|\S+\.py")
def looks_like_yaml(text: str) -> bool:
    return SIDEKIQ_KEY_LINE.search(text) is not None


def yaml_error(file: Path, text: str, settings: frozenset[str]) -> str:
    """Sidequest reads TOML, and here is the TOML for what the file says (or an example);
    ``settings``: the names Sidequest knows."""
    scan = _YamlScan()
    for number, line in enumerate(text.splitlines(), 1):
        scan.line(number, line)
    lines, notes = [], scan.notes
    for key, value in scan.entries.items():
        try:
            lines.append(_toml_setting(key, value, settings))
        except ValueError as exc:
            notes.append(f"{key}: {exc}")
    if lines:
        shown = "Its settings in TOML, to save as sidequest.toml and pass as -C sidequest.toml:"
    else:
        shown = "A TOML settings file looks like this (sidequest -C sidequest.toml):"
    toml = "\n".join(lines) if lines else EXAMPLE_TOML.rstrip("\n")
    left = "".join(f"\n  not translated: {note}" for note in notes)
    return (f"config file {file} is YAML, like Sidekiq's sidekiq.yml: Sidequest reads a TOML "
            f"settings file, not sidekiq.yml. {shown}\n\n{toml}\n{left}\n"
            f"The settings are listed in {SETTINGS_DOC}.")


class _YamlScan:
    """The top-level ``:key: value`` and ``:key:`` + ``- item`` entries of a sidekiq.yml, by
    a line scan (a hint needs no YAML parser), and notes on the lines it leaves out."""

    def __init__(self) -> None:
        self.entries: dict[str, str | list[str]] = {}
        self.notes: list[str] = []
        self.block = ""  # the top-level key whose value follows on indented lines
        self.items: list[str] = []  # its list items
        self.section = False  # inside a per-environment section, which is not translated

    def line(self, number: int, raw: str) -> None:
        line = re.sub(r"(^|\s)#.*", "", raw).rstrip()
        if not line.strip() or line == "---":
            return
        key, item = _YAML_KEY.fullmatch(line), _YAML_ITEM.fullmatch(line)
        if key and not key.group(1):
            self._top(key.group(2), key.group(3))
        elif self.section and line[0].isspace():
            return
        elif item and self.block:
            self.items.append(item.group(1))
        elif key and self.block:  # a setting inside ``production:``, or ``:schedule:``'s
            self.entries.pop(self.block)
            hint = SIDEKIQ_ONLY.get(self.block) or ENVIRONMENT_HINT.format(name=self.block)
            self.notes.append(f"{self.block}: {hint}")
            self.section, self.block = True, ""
        else:
            self.notes.append(f"line {number} ({raw.strip()!r}) was not read")

    def _top(self, key: str, value: str | None) -> None:
        self.section, self.items = False, []
        self.block = "" if value else key
        self.entries[key] = value or self.items


def _toml_setting(key: str, value: str | list[str], settings: frozenset[str]) -> str:
    """``name = value`` in TOML for Sidekiq's setting ``key``; a ValueError says why not."""
    name = SIDEKIQ_RENAMED.get(key, key)
    if name not in settings:
        raise ValueError(SIDEKIQ_ONLY.get(key, "Sidequest has no such setting"))
    if "<%" in str(value):
        raise ValueError("ERB (<%= %>) is Ruby: write the value, or pass it as a flag from "
                         "the shell, e.g. -c \"$RAILS_MAX_THREADS\"")
    if name == "queues":
        return f"queues = {_toml_list(_queue_spec(item) for item in _items(value))}"
    if name == "require":
        return _toml_require([_unquote(item) for item in _items(value)])
    if name == "labels":
        return f"labels = {_toml_list(_unquote(item) for item in _items(value))}"
    if isinstance(value, list):
        raise ValueError("a list, where Sidequest takes one value")
    return f"{name} = {_toml_scalar(value)}"


def _items(value: str | list[str]) -> list[str]:
    """A YAML list's items: ``- item`` lines, a ``[a, [b, 2]]`` flow list, or one value."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        value = re.findall(r"\[[^\]]*\]|[^,\s][^,]*", value[1:-1])
    items = [value] if isinstance(value, str) else value
    if not items:
        raise ValueError("no value given")
    return [item.strip() for item in items]


def _queue_spec(item: str) -> str:
    """Sidekiq's ``[critical, 3]`` or ``critical`` as Sidequest's ``critical,3``/``critical``."""
    if not (item.startswith("[") and item.endswith("]")):
        return _unquote(item)
    parts = [_unquote(part) for part in item[1:-1].split(",")]
    if len(parts) > 2:
        raise ValueError(f"queue {item}: write [name, weight]")
    return ",".join(parts)


def _toml_require(targets: list[str]) -> str:
    if all(_MODULE.fullmatch(target) for target in targets):
        return f"require = {_toml_list(targets)}"
    # Sidekiq requires Ruby (a Rails root, a .rb file): say what Sidequest wants there.
    return (f"require = [\"app.jobs\"]  # not {', '.join(targets)}, which is Ruby: the Python "
            "module that defines your jobs")


def _toml_scalar(text: str) -> str:
    if text in ("true", "false") or _NUMBER.fullmatch(text):
        return text
    return json.dumps(_unquote(text))  # a JSON string is a TOML basic string


def _toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def unknown_hint(key: str, value: Any, settings: frozenset[str]) -> str:
    """What to write instead of the unknown setting ``key`` (``settings``: the known ones)."""
    name = key.lower().replace("-", "_")
    if name in SIDEKIQ_ONLY or name in OTHER_NAMES:
        return SIDEKIQ_ONLY.get(name) or OTHER_NAMES[name]
    if _is_environment_section(key, value, settings):
        return ENVIRONMENT_HINT.format(name=key)
    close = [known for known in difflib.get_close_matches(name, sorted(settings), n=3)
             if _SAID_ONLY.get(known, "") in name]
    return f"did you mean {close[0]!r}?" if close else f"the settings are listed in {SETTINGS_DOC}"


def _is_environment_section(key: str, value: Any, settings: frozenset[str]) -> bool:
    """A table like Sidekiq's ``production:`` block: named after an environment, or holding
    settings (a misspelt table of Sidequest's own, such as ``[shard]``, holds none)."""
    if not isinstance(value, Mapping):
        return False
    return key in ENVIRONMENTS or any(str(k).replace("-", "_") in settings for k in value)
