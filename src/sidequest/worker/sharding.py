"""A worker whose queues live on several shards (independent Redis servers).

Each worker process serves one shard: its fetcher, heartbeat, scheduler, reaper and periodic
poller all talk to that Redis, so a job's retries, its schedule and its in-progress entry stay
on the shard it came from, and each shard's dashboard and reaper see the process. A command
given queues on several shards forks one process per shard (per ``-P`` slot), each with the
queues of its shard and ``-c`` threads; with one shard nothing changes.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from sidequest import connection
from sidequest.config import Config
from sidequest.errors import ConfigError
from sidequest.periodic_jobs import Entry

log = logging.getLogger("sidequest")


def plan(config: Config) -> list[tuple[str, Config]]:
    """Each shard that the config's queues live on, with the config of a process serving it
    (its queues only, in the given order and weights)."""
    table = connection.shard_map()
    if table is None:
        return [(connection.current_shard(), config)]
    weights = dict(config.queues)
    return [(shard, replace(config, queues=tuple((name, weights[name]) for name in names)))
            for shard, names in table.group(config.queue_names).items()]


def check_served(config: Config) -> None:
    """Refuse a process whose queues are not all on the shard it talks to."""
    table = connection.shard_map()
    if table is None:
        return
    home = connection.current_shard()
    others = {q: table.shard_of(q) for q in config.queue_names if table.shard_of(q) != home}
    if others:
        listed = ", ".join(f"{q} (shard {s})" for q, s in others.items())
        raise ConfigError(
            f"this worker process talks to shard {home!r} but was given queues of other "
            f"shards: {listed}; the sidequest command starts one process per shard by "
            "itself, and an embedded worker serves the queues of one shard only (embed one "
            "per shard in separate processes)")


def own_entries(entries: list[Entry]) -> list[Entry]:
    """The periodic entries this process pushes: those whose queue is on its shard (a tick's
    state and its job are written together, in one Redis)."""
    table = connection.shard_map()
    if table is None:
        return entries
    home = connection.current_shard()
    for entry in entries:
        shard = table.shard_of(entry.queue)
        if shard != home:
            log.info("periodic %s goes to queue %s on shard %s: a worker process serving "
                     "that shard pushes it", entry.name, entry.queue, shard)
    return [entry for entry in entries if table.shard_of(entry.queue) == home]
