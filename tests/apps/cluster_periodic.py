"""Periodic entries for the Redis Cluster tests, onto a queue no test worker reads so that the
test counts the pushes themselves: a cron of every minute, and a six-field cron of every
second (a minute is too long to wait for more than one tick of the first)."""

from __future__ import annotations

import sidequest

COUNT_QUEUE = "cluster-periodic"
EVERY_MINUTE = "cluster-every-minute"
EVERY_SECOND = "cluster-every-second"


class Tick(sidequest.Job):
    name = "cluster.PeriodicTick"

    def perform(self) -> None:
        pass


sidequest.periodic(Tick, cron="* * * * *", name=EVERY_MINUTE, queue=COUNT_QUEUE)
sidequest.periodic(Tick, cron="* * * * * *", name=EVERY_SECOND, queue=COUNT_QUEUE)
