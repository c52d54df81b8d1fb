"""How a finished async job is acknowledged: on the event loop, handed to the fetcher's next
round, with no hop to a thread per job. Real Redis, in-process workers."""

from __future__ import annotations

import asyncio

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, keys
from sidequest.worker.manager import Manager

done: list[int] = []


class Quick(Job):
    async def perform(self, n: int) -> None:
        await asyncio.sleep(0)
        done.append(n)


def _inprogress(r: redis.Redis) -> list[str]:
    identity = next(iter(r.smembers("processes")), "")
    return r.lrange(keys.inprogress(identity), 0, -1) if identity else []


def test_async_jobs_are_acknowledged_on_the_loop_not_one_thread_hop_each(
        redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    done.clear()
    direct: list[bytes] = []  # acknowledgements sent from a thread of the loop's executor
    send = Manager._async_acknowledge

    def counted(self: Manager, raw: bytes) -> None:
        direct.append(raw)
        send(self, raw)

    monkeypatch.setattr(Manager, "_async_acknowledge", counted)
    jobs = 1000
    Quick.perform_bulk([[i] for i in range(jobs)])
    with running_worker(concurrency=2, async_concurrency=50):
        wait_for(lambda: len(done) == jobs, timeout=30, what="every job run")
        wait_for(lambda: r.llen("queue:default") == 0 and not _inprogress(r), timeout=10,
                 what="every job acknowledged")
    # Only the jobs that end once the queue is empty (a processor then waits in Redis and
    # no fetch round is due) are sent from a thread: at most the 50 running then and the
    # 100 held for the processors (the prefetch floor, MIN_PREFETCH).
    assert len(direct) <= 50 + 100, f"{len(direct)} of {jobs} acknowledged off the loop"
