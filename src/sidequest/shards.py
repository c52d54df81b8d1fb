"""Sharding: queues spread over several independent Redis servers ("shards").

Each shard is an ordinary Sidekiq-format Redis holding the queues routed to it, with its own
schedule, retry and dead sets and its own processes. A queue not named in the routing table
lives on the default shard: the ordinary Redis URL, named ``default``. This module is the
routing table and its checks; connection.py holds the clients.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sidequest import environ
from sidequest.errors import ConfigError
from sidequest.options import QUEUE_NAME
from sidequest.urls import check_url, is_cluster, redacted, server_of

DEFAULT = "default"
SHARD_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
#: ``reports=redis://h2:6379/0 eu=redis://h3:6379/0`` (space-separated: a Sentinel URL
#: holds commas).
ENV_SHARDS = environ.SHARDS
#: ``reports=reports exports=reports``: queue=shard pairs.
ENV_SHARD_QUEUES = environ.SHARD_QUEUES


@dataclass(frozen=True)
class ShardMap:
    """Shard names to URLs (the default shard's URL is the ordinary one, not kept here) and
    queue names to shard names."""

    urls: Mapping[str, str]
    queues: Mapping[str, str]

    def shard_of(self, queue: str) -> str:
        return self.queues.get(queue, DEFAULT)

    @property
    def names(self) -> list[str]:
        """Every shard, the default first."""
        return [DEFAULT, *sorted(self.urls)]

    def group(self, queues: Iterable[str]) -> dict[str, list[str]]:
        """The queues by shard, each list in the given order; shards in order of first use."""
        out: dict[str, list[str]] = {}
        for queue in queues:
            out.setdefault(self.shard_of(queue), []).append(queue)
        return out


def build(shards: Mapping[str, str] | None, shard_queues: Mapping[str, str] | None,
          source: str = "", default: str | None = None,
          routes_source: str | None = None) -> ShardMap | None:
    """The checked routing table, or None when no shard is defined (one Redis).

    ``default`` is the default shard's URL (``redis_url``): a shard naming that Redis too is
    refused, as two shards naming one Redis are. Errors start with ``source``, or for the
    routes with ``routes_source`` when they came from elsewhere (another variable)."""
    where = f"{source}: " if source else ""
    urls = _urls(shards or {}, where)
    if urls and default is not None:
        _check_apart(urls, default, where)
    if routes_source is not None:
        where = f"{routes_source}: " if routes_source else ""
    queues = _routes(shard_queues or {}, urls, where)
    if not urls and not queues:
        return None
    return ShardMap(urls=urls, queues=queues)


def _urls(shards: Any, where: str) -> dict[str, str]:
    if not isinstance(shards, Mapping):
        raise ConfigError(f"{where}shards must map shard names to Redis URLs, e.g. "
                          f"{{\"reports\": \"redis://h2:6379/0\"}}; got {shards!r}")
    urls: dict[str, str] = {}
    for name, given in shards.items():
        if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
            raise ConfigError(f"{where}shards: shard name {name!r}: use ASCII letters, digits and "
                              "_ . - only (at most 64)")
        if name == DEFAULT:
            raise ConfigError(f"{where}shards: the shard named {DEFAULT!r} is the ordinary "
                              "Redis URL (redis_url); give it there and leave it out of shards")
        try:
            url = check_url(given)
        except ConfigError as exc:
            raise ConfigError(f"{where}shards: shard {name!r}: {exc}") from None
        twin = _twin(urls, url)
        if twin is not None:
            raise ConfigError(f"{where}shards {twin!r} and {name!r} name the same Redis "
                              f"({_both(urls[twin], url)}), where they would share every "
                              "key: route their queues to one shard (only shards on a Redis "
                              "Cluster, whose keys carry the shard's name, may share a URL)")
        urls[name] = url
    return urls


def _twin(urls: Mapping[str, str], url: str) -> str | None:
    """The shard among ``urls`` on the same plain Redis server and database as ``url``
    (however either is spelt); None if there is none, or ``url`` is a cluster's."""
    if is_cluster(url):
        return None
    here = server_of(url)
    return next((name for name, other in urls.items() if server_of(other) == here), None)


def _check_apart(urls: Mapping[str, str], default: str, where: str) -> None:
    """Refuse a shard on the default shard's Redis: its queues would share that Redis's
    keys (and ``sidequest stats`` would count them twice)."""
    twin = _twin(urls, default)
    if twin is not None:
        raise ConfigError(
            f"{where}shards: shard {twin!r} ({redacted(urls[twin])}) names the same Redis as "
            f"the default shard (redis_url {redacted(default)}), where they would share every "
            f"key: point shard {twin!r} at another Redis server, or remove it and its "
            "shard_queues entries (those queues then stay on the default shard)")


def _both(first: str, second: str) -> str:
    """Two spellings of one Redis, each without its password; one if they are the same."""
    if first == second:
        return redacted(first)
    return f"{redacted(first)} and {redacted(second)}"


def _routes(shard_queues: Any, urls: Mapping[str, str], where: str) -> dict[str, str]:
    if not isinstance(shard_queues, Mapping):
        raise ConfigError(f"{where}shard_queues must map queue names to shard names, e.g. "
                          f"{{\"exports\": \"reports\"}}; got {shard_queues!r}")
    known = [DEFAULT, *sorted(urls)]
    routes: dict[str, str] = {}
    for queue, shard in shard_queues.items():
        if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
            raise ConfigError(f"{where}shard_queues: queue {queue!r}: use ASCII letters, digits "
                              "and _ : . - only")
        if shard not in known:
            close = difflib.get_close_matches(str(shard), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}shard_queues routes queue {queue!r} to shard {shard!r}, which is not "
                f"defined{hint}; define it under shards (name = Redis URL) or route the queue "
                f"to one of: {', '.join(known)}")
        routes[queue] = shard
    return routes


#: An example pair for each variable, for its errors.
_EXAMPLES = {"SIDEQUEST_SHARDS": "reports=redis://h2:6379/0",
             "SIDEQUEST_SHARD_QUEUES": "reports=reports"}
#: Pairs joined with commas, not spaces: ",name=scheme://" inside a URL (whose own commas
#: come between Sentinel or cluster nodes, or in a password), ",name=" inside a shard's name.
_JOINED = {ENV_SHARDS: re.compile(r",\s*[\w.:-]+=[a-z][\w+.-]*://"),
           ENV_SHARD_QUEUES: re.compile(r",\s*[\w.:-]+=")}


def _pairs(text: str, variable: str) -> dict[str, str]:
    out: dict[str, str] = {}
    example = _EXAMPLES.get(variable, "name=value")
    for item in text.split():
        name, equals, value = item.partition("=")
        if not equals or not name or not value:
            raise ConfigError(f"${variable}: {item!r} is not NAME=VALUE; write space-separated "
                              f"pairs such as '{example}'")
        if variable in _JOINED and _JOINED[variable].search(value):
            raise ConfigError(f"${variable}: the value of {name!r} holds several pairs joined"
                              f" by a comma; separate them with spaces, e.g. '{example}"
                              f" mail=...'")
        if name in out:
            raise ConfigError(f"${variable}: {name!r} is given twice; give it once")
        out[name] = value
    return out


def from_env(env: Mapping[str, str] = os.environ,
             default: str | None = None) -> ShardMap | None:
    """The table from ``$SIDEQUEST_SHARDS`` and ``$SIDEQUEST_SHARD_QUEUES``, if set (checked
    against ``default``, the default shard's URL, as build() does)."""
    shards = _pairs(env.get(ENV_SHARDS, ""), ENV_SHARDS)
    routes = _pairs(env.get(ENV_SHARD_QUEUES, ""), ENV_SHARD_QUEUES)
    return build(shards, routes, "$" + ENV_SHARDS if shards else "", default,
                 routes_source="$" + ENV_SHARD_QUEUES if routes else "")


def by_shard(table: ShardMap, jobs: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The jobs by the shard of their queue, in order."""
    out: dict[str, list[Any]] = {}
    for job in jobs:
        out.setdefault(table.shard_of(job["queue"]), []).append(job)
    return out


def check_jobs(table: ShardMap, jobs: Iterable[Mapping[str, Any]],
               batch_shard: str | None) -> None:
    """Refuse a job that the worker of its shard could not finish: retried into a queue of
    another shard, or joining a batch kept on another shard."""
    for job in jobs:
        queue = job["queue"]
        shard = table.shard_of(queue)
        retry_queue = job.get("retry_queue")
        if isinstance(retry_queue, str) and table.shard_of(retry_queue) != shard:
            raise ValueError(
                f"{job['class']}: queue {queue!r} is on shard {shard!r} but its retry_queue "
                f"{retry_queue!r} is on shard {table.shard_of(retry_queue)!r}; retries stay on "
                "the job's shard, so pick a retry_queue routed to the same shard")
        if batch_shard is not None and shard != batch_shard:
            raise ValueError(
                f"{job['class']}: queue {queue!r} is on shard {shard!r} but the batch is kept "
                f"on shard {batch_shard!r}; a batch and its jobs live on one shard: create it "
                f"with Batch(..., shard={shard!r}) or push to a queue of shard "
                f"{batch_shard!r}")
