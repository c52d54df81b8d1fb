"""Reading the execution metrics that :mod:`sidequest.metrics` records: per job class, runs,
failures and execution time over the last hour, 8 hours or 24 hours, and a histogram.

The last hour is read from per-minute hashes (60 of them), longer periods from 10-minute ones
(48 or 144), each in one pipelined round trip.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

from sidequest import connection, keys
from sidequest.api.lenient import as_int
from sidequest.metrics import BUCKETS, minute_stamp

#: Period name -> (seconds, slot length in seconds).
PERIODS: dict[str, tuple[int, int]] = {"1h": (3600, 60), "8h": (8 * 3600, 600),
                                       "24h": (24 * 3600, 600)}
HISTOGRAM_SLOTS = {"1h": 7, "8h": 48, "24h": 144}


@dataclass
class ClassMetrics:
    name: str
    processed: int = 0
    failed: int = 0
    total_ms: int = 0
    #: Successful runs per execution-time bucket (see ``sidequest.metrics.BOUNDS_MS``).
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    @property
    def succeeded(self) -> int:
        return max(0, self.processed - self.failed)

    @property
    def average_ms(self) -> float:
        """Mean execution time of the successful runs (failures are not timed)."""
        return self.total_ms / self.succeeded if self.succeeded else 0.0


@dataclass(frozen=True)
class Slot:
    """One minute or 10 minutes of one class: its start (epoch s) and counts."""

    start: float
    processed: int
    failed: int
    total_ms: int


def slots(period: str, now: float | None = None) -> list[tuple[float, str]]:
    """The (start time, key) of every slot in ``period``, oldest first, the current included."""
    seconds, step = PERIODS[period]
    end = now if now is not None else time.time()
    first = end - end % step - seconds + step
    starts = [first + i * step for i in range(seconds // step)]
    if step == 60:
        return [(s, keys.metrics_minute(minute_stamp(s))) for s in starts]
    return [(s, keys.metrics_ten_minutes(minute_stamp(s)[:-1])) for s in starts]


def summary(
    period: str = "1h", now: float | None = None, substring: str = ""
) -> list[ClassMetrics]:
    """Every class with runs in ``period`` whose name contains ``substring`` (case-blind),
    the most total time first."""
    found: dict[str, ClassMetrics] = {}
    needle = substring.lower()
    pipe = connection.client().pipeline(transaction=False)
    for _, key in slots(period, now):
        pipe.hgetall(key)
    for fields in cast(list[dict[bytes, bytes]], pipe.execute()):
        for raw_field, value in fields.items():
            name, _, kind = raw_field.decode("utf-8", "replace").rpartition("|")
            if needle and needle not in name.lower():
                continue
            _add(found.setdefault(name, ClassMetrics(name)), kind, as_int(value))
    return sorted(found.values(), key=lambda m: (-m.total_ms, -m.processed, m.name))


def for_class(name: str, period: str = "1h",
              now: float | None = None) -> tuple[ClassMetrics, list[Slot]]:
    """One class over ``period``: totals with the histogram, and its counts slot by slot."""
    periods = slots(period, now)
    # The histogram keys are per 10 minutes: the last seven of them cover the last hour.
    histogram_slots = slots("24h", now)[-HISTOGRAM_SLOTS[period]:]
    pipe = connection.client().pipeline(transaction=False)
    for _, key in periods:
        pipe.hmget(key, [f"{name}|p", f"{name}|f", f"{name}|ms"])
    bucket_fields = [f"{name}|{i}" for i in range(BUCKETS)]
    for start, _ in histogram_slots:
        pipe.hmget(keys.metrics_histogram(minute_stamp(start)[:-1]), bucket_fields)
    replies = cast(list[list[Any]], pipe.execute())
    metrics = ClassMetrics(name)
    series = []
    for (start, _), (p, f, ms) in zip(periods, replies, strict=False):
        slot = Slot(start, as_int(p), as_int(f), as_int(ms))
        series.append(slot)
        metrics.processed += slot.processed
        metrics.failed += slot.failed
        metrics.total_ms += slot.total_ms
    for counts in replies[len(periods):]:
        for i, count in enumerate(counts):
            metrics.histogram[i] += int(count or 0)
    return metrics, series


def _add(metrics: ClassMetrics, kind: str, value: int) -> None:
    if kind == "p":
        metrics.processed += value
    elif kind == "f":
        metrics.failed += value
    elif kind == "ms":
        metrics.total_ms += value
