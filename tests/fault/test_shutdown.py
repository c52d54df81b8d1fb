"""F4: SIGTERM with jobs longer than the shutdown timeout."""

from __future__ import annotations

import time

import redis

from apps.fault_jobs import Exit, HoldGil, Limited, Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger
from fault.proxy import FaultProxy
from helpers import wait_for

TIMEOUT = 1.5


def test_sigterm_pushes_back_only_unfinished_jobs(spawn: SpawnWorker, sq: str, r: redis.Redis,
                                                  ledger: Ledger) -> None:
    worker = spawn("-c", "6", timeout=TIMEOUT)
    worker.wait_registered(r)
    short = Work.perform_bulk([[0.5]] * 3)  # finish within the timeout
    long = Work.perform_bulk([[30.0]] * 3)  # blocked in time.sleep (C, GIL released)
    wait_for(lambda: len(ledger.counts("start")) == 6, what="6 jobs running")
    worker.term()
    termed = time.monotonic()
    worker.proc.wait(TIMEOUT + 5)
    exited = time.monotonic() - termed
    assert set(ledger.counts("done")) == set(short)
    assert r.llen("queue:default") == 3 and not r.keys("sq:inprogress:*")
    rescuer = spawn("-c", "3", env={"FAULT_NO_SLEEP": "1"})
    wait_for(lambda: ledger.done_count() == 6, what="the 3 pushed-back jobs to run again")
    rescuer.reap()
    starts, dones = ledger.counts("start"), ledger.counts("done")
    print(f"SIGTERM: exited {exited:.2f}s after TERM (timeout {TIMEOUT}s); "
          f"short {[starts[j] for j in short]} starts, long {[starts[j] for j in long]} starts")
    assert all(starts[j] == 1 and dones[j] == 1 for j in short)  # not re-run
    assert all(starts[j] == 2 and dones[j] == 1 for j in long)  # re-run exactly once
    assert exited < TIMEOUT + 2
    assert worker.proc.returncode == 0  # pushed-back jobs still make a graceful stop


def test_sigterm_exits_in_time_even_if_a_job_holds_the_gil(spawn: SpawnWorker, sq: str,
                                                            r: redis.Redis,
                                                            ledger: Ledger) -> None:
    worker = spawn("-c", "2", timeout=1.0)
    worker.wait_registered(r)
    HoldGil.perform_async(6)
    wait_for(lambda: ledger.counts("start"), what="the GIL holder to start")
    worker.term()
    termed = time.monotonic()
    worker.proc.wait(15)
    exited = time.monotonic() - termed
    print(f"SIGTERM with a GIL-holding job: exited after {exited:.2f}s (timeout 1 s)")
    assert exited < 1.0 + 2
    # The kill is said, not silent.
    assert f"worker process {worker.proc.pid} did not stop within 2.5 s" in worker.log(200)


def test_sigterm_during_a_redis_outage_exits_on_time(spawn: SpawnWorker, sq: str,
                                                     r: redis.Redis, ledger: Ledger,
                                                     proxy: FaultProxy) -> None:
    # The writes that give prefetched jobs back retried until the process was stopping,
    # which it was only after waiting for them: the watchdog killed it (exit 137), silently.
    worker = spawn("-c", "3", url=proxy.url(), timeout=TIMEOUT)
    worker.wait_registered(r)
    jids = Work.perform_bulk([[30.0]] * 8)
    wait_for(lambda: len(ledger.counts("start")) == 3, what="3 jobs running")
    proxy.stop()  # Redis unreachable: connections reset, new ones refused
    worker.term()
    termed = time.monotonic()
    worker.proc.wait(TIMEOUT + 10)
    exited = time.monotonic() - termed
    print(f"SIGTERM during an outage: exited {exited:.2f}s after TERM (timeout {TIMEOUT}s)")
    assert worker.proc.returncode == 0, worker.log()
    assert exited < TIMEOUT + 1.5  # before the watchdog's kill
    assert "could not push unfinished jobs back" in worker.log(200)
    # Nothing lost: every job is still queued or in the process's in-progress list.
    held = r.llen("queue:default") + sum(r.llen(k) for k in r.keys("sq:inprogress:*"))
    assert held == len(jids)


def test_a_term_while_a_replacement_waits_starts_none(spawn: SpawnWorker, sq: str,
                                                      r: redis.Redis, ledger: Ledger) -> None:
    # Children that die soon after they start are replaced after a growing wait. A TERM in
    # that wait used to be acted on only after it, and the replacement started then never
    # heard the TERM: killed at the deadline (exit 1), its job left in progress.
    Exit.perform_bulk([[]] * 8)
    parent = spawn("-P", "2", "-c", "1", timeout=TIMEOUT)
    wait_for(lambda: "starting another in 2 s" in parent.log(400), timeout=60,
             what="a replacement waiting 2 s")
    parent.term()
    termed = time.monotonic()
    parent.proc.wait(TIMEOUT + 10)
    exited = time.monotonic() - termed
    log = parent.log(400)
    assert parent.proc.returncode == 0, log
    assert exited < TIMEOUT + 1.5 and "did not stop in time" not in log


def test_sigterm_frees_the_limiter_slots_of_the_jobs_it_pushes_back(
        spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger) -> None:
    worker = spawn("-c", "2", timeout=1.0)
    worker.wait_registered(r)
    Limited.perform_bulk([[30.0]] * 2)
    wait_for(lambda: len(ledger.counts("start")) == 2, what="both jobs holding a slot")
    assert r.zcard("sq:limiter:fault-two-slots") == 2
    worker.term()
    worker.proc.wait(10)
    assert r.llen("queue:default") == 2, "both pushed back"
    assert r.zcard("sq:limiter:fault-two-slots") == 0, "not held for the 30 s lease"
