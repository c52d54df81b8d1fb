"""The scheduler: moves due jobs from ``retry`` then ``schedule`` into their queues.

Each batch of due jobs is one script call that, job by job, removes the member and pushes
the job (with a fresh ``enqueued_at``) together, so a crash can neither lose a job (Sidekiq's
pop-then-push window) nor double it when several processes poll at once. Polls are spread at
Sidekiq's randomized interval so that N processes together poll about once every
``poll_interval`` seconds.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, cast

import redis

from sidequest import connection, keys
from sidequest.config import Config
from sidequest.errors import PayloadError
from sidequest.morgue import add_dead
from sidequest.payload import decode, dumps, normalized
from sidequest.worker.clock import now
from sidequest.worker.redis_wait import Outage

log = logging.getLogger("sidequest")
BATCH = 100


class Scheduler:
    def __init__(self, config: Config, client: redis.Redis, stopping: threading.Event) -> None:
        self.config = config
        self.client = client
        self.stopping = stopping
        #: Set when the process is quieted: like Sidekiq's poller, stop moving jobs.
        self.paused = threading.Event()
        self._script = connection.script("enqueue_due")
        self._rng = random.Random()

    def run(self) -> None:
        first = self.config.initial_poll_wait + self.config.poll_interval * self._rng.random()
        self.stopping.wait(first)
        outage = Outage("scheduler")
        while not self.stopping.is_set():
            if self.paused.is_set():
                self.stopping.wait(self.config.poll_interval)
                continue
            try:
                self.enqueue_due()
                outage.ok()
            except redis.RedisError as exc:
                outage.failed(exc)
            self.stopping.wait(self._interval())

    def _interval(self) -> float:
        """Sidekiq's spread: average ``N * poll_interval`` across N processes, +-50%."""
        try:
            count = max(1, int(self.client.scard(keys.PROCESSES)))
        except redis.RedisError:
            count = 1
        average = count * self.config.poll_interval
        return average * self._rng.random() + average / 2

    def enqueue_due(self) -> int:
        """Move every job due by now; returns how many this process moved."""
        moved = 0
        for zset in (keys.RETRY, keys.SCHEDULE):
            while not self.stopping.is_set():
                members = cast(list[bytes], self.client.zrange(
                    zset, "-inf", now(), byscore=True, offset=0, num=BATCH))
                if not members:
                    break
                moved += self._move(zset, members)
                if len(members) < BATCH:
                    break
        return moved

    def _move(self, zset: str, members: list[bytes]) -> int:
        stamp = now()
        script_keys = [zset, keys.QUEUES]
        index: dict[str, int] = {}  # queue name -> its key's position in script_keys (1-based)
        args: list[Any] = []
        for member in members:
            try:
                job = decode(member)
            except PayloadError as exc:
                log.error("unreadable job in %s moved to the dead set: %s", zset, exc)
                tx = self.client.pipeline(transaction=True)
                tx.zrem(zset, member)
                add_dead(tx, member, stamp, self.config.dead_max_jobs, self.config.dead_timeout)
                tx.execute()
                continue
            # A job written without queue, jid or created_at (Ruby's JobSet#schedule, other
            # clients) gets them as Sidekiq's Client.push would give them.
            job = normalized(job)
            job["enqueued_at"] = stamp
            job.pop("at", None)
            queue = job["queue"]
            if queue not in index:
                script_keys.append(keys.queue(queue))
                index[queue] = len(script_keys)
            args += [member, dumps(job), index[queue], queue]
        if not args:
            return 0
        return int(self._script(keys=script_keys, args=args, client=self.client))
