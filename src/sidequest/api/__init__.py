"""The read and admin view of everything in Redis, shared by the CLI, the dashboard and
user scripts; the semantics follow Sidekiq's API (Sidekiq::Stats, Queue, RetrySet ...).

    from sidequest.api import Queue, RetrySet, Stats
    Stats().enqueued
    for entry in RetrySet().scan("PaymentError"):
        entry.retry()

Large sets and queues are read in pages, never whole.
"""

from __future__ import annotations

from sidequest.api.batches import BatchStatus
from sidequest.api.cancel import cancel
from sidequest.api.periodic import PeriodicEntry, PeriodicSet
from sidequest.api.processes import Process, ProcessSet, Work, WorkSet, awaiting_recovery
from sidequest.api.queues import Queue
from sidequest.api.records import JobRecord
from sidequest.api.sets import DeadSet, JobSet, RetrySet, ScheduledSet, SortedEntry
from sidequest.api.stats import Stats
from sidequest.api.status import JobStatus
from sidequest.api.unique_locks import UniqueLock

__all__ = [
    "BatchStatus",
    "DeadSet",
    "JobRecord",
    "JobSet",
    "JobStatus",
    "PeriodicEntry",
    "PeriodicSet",
    "Process",
    "ProcessSet",
    "Queue",
    "RetrySet",
    "ScheduledSet",
    "SortedEntry",
    "Stats",
    "UniqueLock",
    "Work",
    "WorkSet",
    "awaiting_recovery",
    "cancel",
]
