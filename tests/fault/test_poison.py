"""F13: poison pills among normal jobs go to the dead set after at most 3 process deaths."""

from __future__ import annotations

import collections
import json
import time
from typing import Any

import pytest
import redis

from apps.fault_jobs import Exit, Oom, Segfault, Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, Supervisor
from helpers import wait_for

# "oom": the job caps RLIMIT_AS, then allocates past it in C without checking malloc, as an
# extension does; the process dies (SIGSEGV). The same cap hit from Python code is a
# MemoryError, an ordinary job failure: see test_memory_error_is_a_job_failure.
PILLS: dict[str, Any] = {"exit": (Exit, []), "segfault": (Segfault, []), "oom": (Oom, ["c"])}


def _dead(r: redis.Redis) -> dict[str, dict[str, Any]]:
    return {job["jid"]: job for job in map(json.loads, r.zrange("dead", 0, -1))}


@pytest.mark.parametrize("kind", list(PILLS))
def test_poison_pill_goes_dead_after_three_deaths(kind: str, spawn: SpawnWorker, sq: str,
                                                  r: redis.Redis, ledger: Ledger) -> None:
    cls, args = PILLS[kind]
    normal = Work.perform_bulk([[0.005]] * 500)
    pill = cls.perform_async(*args)
    normal += Work.perform_bulk([[0.005]] * 500)
    supervisor = Supervisor(lambda: spawn("-c", "10"))
    started = time.monotonic()
    try:
        wait_for(lambda: pill in _dead(r), timeout=40, what=f"the {kind} pill in the dead set")
        buried = time.monotonic() - started
        wait_for(lambda: ledger.done_count() + len(set(normal) & set(_dead(r))) >= 1000,
                 timeout=30, what="every normal job done or dead")
        wait_for(lambda: not r.llen("sq:quarantine") and not r.keys("sq:inprogress:*"),
                 timeout=20, what="the quarantine and the in-progress lists empty")
    finally:
        supervisor.stop()
    dead = _dead(r)
    report = ledger.check(normal, dead=list(dead))
    deaths = len(supervisor.exits)
    pill_starts = ledger.counts("start")[pill]
    marks = collections.Counter(int(r.get(k)) for k in r.keys("sq:deaths:*")
                                if k.decode().split(":")[-1] != pill)
    reruns = collections.Counter(report.reruns.values())
    print(f"{kind} pill: innocent death marks {dict(marks)}, re-runs {dict(reruns)}; ")
    print(f"{kind} pill: {deaths} process deaths {supervisor.exits}, pill started {pill_starts}x,"
          f" buried after {buried:.1f}s; normal jobs: {report.text()};"
          f" innocent dead: {len(report.dead_normal)}")
    assert "died 3 times" in dead[pill]["error_message"]
    assert dead[pill]["error_class"] == "Sidequest::JobKilled"
    assert deaths == pill_starts <= 3
    assert report.lost == []
    # The quarantine: jobs that ran beside the pill twice then run alone, and survive.
    assert report.dead_normal == []


def test_memory_error_is_a_job_failure(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                       ledger: Ledger) -> None:
    normal = Work.perform_bulk([[0.005]] * 200)
    pill = Oom.set(retry=1).perform_async("python")
    worker = spawn("-c", "5")
    (member,) = wait_for(lambda: r.zrange("retry", 0, -1), what="the pill in the retry set")
    wait_for(lambda: ledger.done_count() == 200, what="the normal jobs done")
    failed = json.loads(member)
    assert failed["jid"] == pill and failed["error_class"] == "MemoryError"
    assert ledger.check(normal).lost == [] and worker.alive


def test_a_poison_pill_in_a_batch_is_its_failure(spawn: SpawnWorker, sq: str,
                                                 r: redis.Redis, ledger: Ledger) -> None:
    """Buried by a reaper, never by the job's own process: its batch must still hear of it,
    or it waits for good (and a stored status would say "running")."""
    from sidequest import Batch
    from sidequest.api import BatchStatus

    batch = Batch("with a pill")
    with batch.jobs():
        normal = Work.perform_bulk([[0.005]] * 20)
        pill = Exit.perform_async()
    supervisor = Supervisor(lambda: spawn("-c", "5"))
    try:
        wait_for(lambda: pill in _dead(r), timeout=40, what="the pill in the dead set")
        ended = wait_for(lambda: (s := BatchStatus(batch.bid)).complete and s, timeout=20,
                         what="the batch to complete")
    finally:
        supervisor.stop()
    assert ended.total == len(normal) + 1 and ended.failed_jids == [pill]
    assert not ended.success and ended.pending == 1
