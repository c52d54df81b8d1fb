"""Prometheus metrics for the whole Redis: queue sizes and latency, busy threads, the retry,
scheduled and dead sets, totals, and per job class runs, failures and run times.

    pip install 'sidequest[prometheus]'

The dashboard serves them at ``/prometheus`` (see the README); to serve them from your own
app, register the collector with prometheus-client:

    from prometheus_client import REGISTRY
    from sidequest.contrib.prometheus import SidequestCollector
    REGISTRY.register(SidequestCollector())

Every figure is read from Redis at scrape time, so one scrape target covers every process.
A scrape costs at most ten round trips to Redis (eight of them pipelines) and at most
``MAX_QUEUES`` queues' worth of commands, however many queues and job classes exist.
Per-class figures cover the last hour (from the per-minute execution metrics the workers
record), so they are gauges, and the run-time histogram is a gauge histogram; the all-time
totals are counters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import redis

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeHistogramMetricFamily,
        GaugeMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "sidequest.contrib.prometheus needs prometheus-client: "
        "pip install 'sidequest[prometheus]'"
    ) from exc

from sidequest import connection, keys
from sidequest.api import awaiting_recovery, metrics
from sidequest.api.lenient import as_int, key_of, outages_raised, replies, shown
from sidequest.api.queues import latency_of, queue_names
from sidequest.api.stats import live_stats
from sidequest.metrics import BOUNDS_MS, BUCKETS, minute_stamp

log = logging.getLogger("sidequest")

#: Queues reported per scrape, the largest first; a Redis with more reports these.
MAX_QUEUES = 500


class SidequestCollector(Collector):
    """Reads the figures from Redis on each ``collect()`` (each scrape).

    While Redis cannot be reached, a scrape gives ``sidequest_redis_up 0`` and nothing else
    (1 with the figures otherwise), rather than failing the scrape of the whole registry:
    registered in an app's own registry, an exception here would take the app's other
    metrics down with it."""

    def describe(self) -> Iterator[Metric]:
        # Without describe(), prometheus-client calls collect() at registration, so an app
        # that registers this while Redis is down would fail to start. The families without
        # samples: their names let the registry refuse a second registration and answer a
        # scrape filtered by name.
        yield _up(0)
        yield from _families(_Figures())

    def collect(self) -> Iterator[Metric]:
        try:
            figures = _Figures.read()
        except redis.RedisError as exc:
            log.warning("Prometheus scrape: Redis could not be read: %s", exc)
            yield _up(0)
            return
        yield _up(1)
        yield from _families(figures)


#: The totals of a describe(), which reads nothing.
_NO_STATS = SimpleNamespace(processed=0, failed=0, expired=0, overlimit=0, workers_size=0,
                            processes_size=0, enqueued=0, scheduled_size=0, retry_size=0,
                            dead_size=0)


@dataclass
class _Figures:
    """What one scrape reads from Redis, all of it before any family is built: a scrape
    that fails midway yields no half set."""

    stats: Any = field(default_factory=lambda: _NO_STATS)
    #: Jobs of dead processes that no Sidequest worker has put back yet: with only Ruby
    #: workers running nothing will, so this is what to alert on.
    awaiting_recovery: int = 0
    queues: list[tuple[str, int, float]] = field(default_factory=list)
    #: Queues in Redis: more than ``queues`` holds when there are over MAX_QUEUES.
    queue_count: int = 0
    classes: list[metrics.ClassMetrics] = field(default_factory=list)
    histograms: dict[str, list[int]] = field(default_factory=dict)
    #: Milliseconds of the successful runs counted in ``histograms``, per class.
    histogram_ms: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls) -> _Figures:
        stats = live_stats()
        queues, queue_count = _queue_figures()
        return cls(stats, sum(awaiting_recovery().values()), queues, queue_count,
                   metrics.summary("1h"), *_histograms())


def _families(figures: _Figures) -> Iterator[Metric]:
    yield from _totals(figures.stats)
    yield _gauge("sidequest_awaiting_recovery", "Jobs of dead Sidequest processes not yet"
                 " put back in their queues.", figures.awaiting_recovery)
    yield _gauge("sidequest_queues", f"Queues in Redis (sidequest_queue_size reports the"
                 f" {MAX_QUEUES} largest).", figures.queue_count)
    yield from _queues(figures.queues)
    yield from _classes(figures.classes)
    yield _durations(figures.histograms, figures.histogram_ms)


def _up(value: int) -> GaugeMetricFamily:
    return _gauge("sidequest_redis_up", "1 when this scrape could read Sidequest's Redis, else 0"
                  " (and no other figure).", value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _totals(stats: Any) -> Iterator[Metric]:
    yield CounterMetricFamily("sidequest_processed", "Jobs run, failures included (all time).",
                              value=stats.processed)
    yield CounterMetricFamily("sidequest_failed", "Jobs that raised (all time).",
                              value=stats.failed)
    yield CounterMetricFamily("sidequest_expired", "Jobs dropped unrun past their expires_at.",
                              value=stats.expired)
    yield CounterMetricFamily("sidequest_overlimit",
                              "Jobs rescheduled because a rate limiter was full (all time).",
                              value=stats.overlimit)
    yield _gauge("sidequest_busy", "Jobs running now, in every process.", stats.workers_size)
    yield _gauge("sidequest_processes", "Worker processes alive.", stats.processes_size)
    yield _gauge("sidequest_enqueued", "Jobs waiting in every queue.", stats.enqueued)
    yield _gauge("sidequest_scheduled", "Jobs in the schedule set.", stats.scheduled_size)
    yield _gauge("sidequest_retries", "Jobs waiting to retry.", stats.retry_size)
    yield _gauge("sidequest_dead", "Jobs in the dead set.", stats.dead_size)


def _queue_figures() -> tuple[list[tuple[str, int, float]], int]:
    """(queue, size, latency) of the MAX_QUEUES largest queues, and how many queues there
    are: two pipelined round trips. Each is read by its name's exact bytes (one that is not
    UTF-8 too) and labelled with its printable name."""
    client = connection.client()
    names = queue_names(client)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(key_of(keys.queue, name))
    sizes = [as_int(size) for size in replies(pipe)]  # a key of another type reads as empty
    # The largest, not the first by name: past the cap a busy queue must not be the one left
    # out (sorted() is stable: equal sizes keep the names' order).
    ranked = sorted(zip(names, sizes, strict=True), key=lambda pair: -pair[1])[:MAX_QUEUES]
    pipe = client.pipeline(transaction=False)
    for name, _ in ranked:
        pipe.lindex(key_of(keys.queue, name), -1)
    oldest = replies(pipe)
    return ([(shown(name), size, latency_of(oldest[i])) for i, (name, size) in enumerate(ranked)],
            len(names))


def _queues(found: list[tuple[str, int, float]]) -> Iterator[Metric]:
    size = GaugeMetricFamily("sidequest_queue_size", "Jobs waiting in the queue.",
                             labels=["queue"])
    latency = GaugeMetricFamily("sidequest_queue_latency_seconds",
                                "Age of the oldest job waiting in the queue.", labels=["queue"])
    for name, length, age in found:
        size.add_metric([name], length)
        latency.add_metric([name], age)
    yield size
    yield latency


def _classes(found: list[metrics.ClassMetrics]) -> Iterator[Metric]:
    runs = GaugeMetricFamily("sidequest_job_runs_last_hour",
                             "Runs of the job class in the last hour, failures included.",
                             labels=["class"])
    failures = GaugeMetricFamily("sidequest_job_failures_last_hour",
                                 "Runs of the job class that raised in the last hour.",
                                 labels=["class"])
    for item in found:
        runs.add_metric([item.name], item.processed)
        failures.add_metric([item.name], item.failed)
    yield runs
    yield failures


def _histograms() -> tuple[dict[str, list[int]], dict[str, int]]:
    """Bucket counts per class from the 10-minute histogram hashes covering the last hour,
    and the run time they add up to, from the 10-minute totals of those same slots (the
    hour of per-minute totals is another span: the sum would not match the counts). Read
    for every class at once: one pipelined round trip of fourteen HGETALLs."""
    stamps = [minute_stamp(start)[:-1]
              for start, _ in metrics.slots("24h")[-metrics.HISTOGRAM_SLOTS["1h"]:]]
    pipe = connection.client().pipeline(transaction=False)
    for stamp in stamps:
        pipe.hgetall(keys.metrics_histogram(stamp))
        pipe.hgetall(keys.metrics_ten_minutes(stamp))
    replies = cast(list[dict[bytes, bytes]], outages_raised(pipe.execute(raise_on_error=False)))
    counts: dict[str, list[int]] = {}
    total_ms: dict[str, int] = {}
    for buckets, totals in zip(replies[::2], replies[1::2], strict=True):
        for name, field_name, value in _fields(buckets):
            if field_name.isdigit() and int(field_name) < BUCKETS:
                counts.setdefault(name, [0] * BUCKETS)[int(field_name)] += as_int(value)
        for name, field_name, value in _fields(totals):
            if field_name == "ms":
                total_ms[name] = total_ms.get(name, 0) + as_int(value)
    return counts, total_ms


def _fields(reply: Any) -> Iterator[tuple[str, str, bytes]]:
    """A metrics hash's ``<class>|<field>`` entries; nothing for a key of the wrong type."""
    if not isinstance(reply, dict):
        return
    for raw, value in reply.items():
        name, _, field_name = raw.decode("utf-8", "replace").rpartition("|")
        yield name, field_name, value


def _durations(counts: dict[str, list[int]],
               total_ms: dict[str, int]) -> GaugeHistogramMetricFamily:
    family = GaugeHistogramMetricFamily(
        "sidequest_job_duration_seconds",
        "Run times of the job class's successful runs in about the last hour.",
        labels=["class"])
    for name, histogram in sorted(counts.items()):
        cumulative, buckets = 0, []
        for bound_ms, count in zip([*BOUNDS_MS, None], histogram, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound_ms is None else f"{bound_ms / 1000:g}", cumulative))
        family.add_metric([name], buckets, gsum_value=total_ms.get(name, 0) / 1000)
    return family
