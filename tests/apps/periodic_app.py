"""A periodic entry for the worker-subprocess tests: every second, onto a queue no test
worker reads, so that the test counts the pushes themselves (not the runs)."""

from __future__ import annotations

import sidequest

COUNT_QUEUE = "periodic-count"


class Tick(sidequest.Job):
    name = "tests.PeriodicTick"

    def perform(self) -> None:
        pass


sidequest.periodic(Tick, every=1, name="every-second", queue=COUNT_QUEUE)
