"""A job stuck in C code past its timeout (a JobTimeout cannot land there) makes its process
retire: the stuck job counts one failure, the other jobs go back to the queue, and the
process exits for its supervisor to restart; a fresh worker runs the rest. Nothing is lost.
The same for an async job that blocks the event loop, where its cancellation cannot land."""

from __future__ import annotations

import time

import redis

from apps.fault_jobs import AsyncBlocker, AsyncHog, AsyncTimed, AsyncWork, Stuck, Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger
from helpers import wait_for
from sidequest.api import RetrySet
from sidequest.api.metrics import summary
from sidequest.worker.timeouts import GRACE


def test_a_stuck_job_retires_its_process_and_loses_nothing(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    # The default fetch_timeout (2 s): the stop waited that plus 2 for the stuck thread.
    victim = spawn("-c", "3", fetch_timeout=2.0)
    victim.wait_registered(r)
    stuck = Stuck.set(backtrace=True).perform_async(60.0)
    others = Work.perform_bulk([[5.0]] * 2)
    wait_for(lambda: len(ledger.counts("start")) == 3, what="all three jobs running")
    begun = time.monotonic()
    wait_for(lambda: not victim.alive, timeout=1 + GRACE + 20, what="the process to retire")
    assert time.monotonic() - begun >= 1 + GRACE - 0.5, "not before the grace period"
    (entry,) = list(RetrySet())
    assert entry.jid == stuck and entry.item["error_class"].endswith("JobTimeout")
    # Where it was stuck, read from its thread, as a timeout that landed would show it.
    assert any("fault_jobs.py" in line and "perform" in line for line in entry.error_backtrace)
    # Counted as a run that failed, beside the others that ran to the end there.
    done = ledger.done_count()
    assert (r.get("stat:processed"), r.get("stat:failed")) == (b"%d" % (1 + done), b"1")
    rescuer = spawn("-c", "3")
    rescuer.wait_registered(r)
    wait_for(lambda: ledger.done_count() == 2, timeout=30, what="the other jobs to be done")
    assert set(ledger.counts("done")) == set(others), victim.log()
    log = victim.log()
    assert "retiring this process" in log
    # Its own fail line, as any failed job's, naming it and the line it was stuck on.
    (fail,) = [line for line in log.splitlines() if f"jid={stuck}" in line and "fail:" in line]
    assert "WARNING: fail: sidequest.errors.JobTimeout: the job ran past its timeout" in fail
    frames = log.split(fail, 1)[1].split("(last ", 1)[0]
    assert "fault_jobs.py" in frames and "in perform" in frames, frames
    # A retirement, as planned: exit 0 (the stop waited for the stuck thread past its hard
    # deadline, and the process ended there, exit 1, with a thread dump).
    assert victim.proc.returncode == 0, victim.log()


def test_a_stuck_job_whose_call_returns_while_its_process_retires_fails_once(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    # Given up on at 1 + GRACE s, its call returns at 3 + GRACE s, within the shutdown
    # timeout the retiring process waits: its thread must not record a second outcome (a
    # second retry entry runs the job twice).
    victim = spawn("-c", "2", "-t", "20")
    victim.wait_registered(r)
    stuck = Stuck.perform_async(3.0 + GRACE)
    wait_for(lambda: not victim.alive, timeout=3 + GRACE + 25, what="the process to retire")
    log = victim.log(10_000)
    assert "retiring this process" in log
    entries = list(RetrySet())
    assert [entry.jid for entry in entries] == [stuck], log
    assert "did not stop" in entries[0].item["error_message"]
    assert (r.get("stat:processed"), r.get("stat:failed")) == (b"1", b"1"), log  # counted once
    # In the metrics too: the chain that timed the call, once it returned, adds nothing.
    (counted,) = [m for m in summary() if m.name == Stuck.name]
    assert (counted.processed, counted.failed) == (1, 1), log


def test_an_async_job_blocking_the_loop_retires_its_process_and_loses_nothing(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    victim = spawn("-c", "3")
    victim.wait_registered(r)
    others = AsyncWork.perform_bulk([[5.0]] * 2) + Work.perform_bulk([[5.0]])
    wait_for(lambda: len(ledger.counts("start")) == 3, what="the other jobs running")
    blocker = AsyncBlocker.set(backtrace=True).perform_async(60.0)
    wait_for(lambda: len(ledger.counts("start")) == 4, what="the blocking job running")
    begun = time.monotonic()
    wait_for(lambda: not victim.alive, timeout=1 + GRACE + 20, what="the process to retire")
    assert time.monotonic() - begun >= 1 + GRACE - 0.5, "not before the grace period"
    (entry,) = list(RetrySet())
    assert entry.jid == blocker and entry.item["error_class"].endswith("JobTimeout")
    assert any("fault_jobs.py" in line and "perform" in line for line in entry.error_backtrace)
    rescuer = spawn("-c", "3")
    rescuer.wait_registered(r)
    wait_for(lambda: ledger.done_count() >= 3, timeout=30, what="the other jobs to be done")
    assert set(ledger.counts("done")) == set(others), victim.log()
    log = victim.log(10_000)
    assert "retiring this process" in log and "blocks the event loop" in log, log
    # The two async jobs on the blocked loop went back; the blocker, failed, is not counted.
    assert "2 jobs still running at the shutdown deadline (fault.AsyncWork jid=" in log, log
    assert "counts as a death" not in log, log  # the blocker is known: no one else's death


def test_the_job_blocking_the_loop_fails_not_the_one_whose_timeout_ran_out_meanwhile(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    # The timed job awaits 1 s of its 2; the hog, which has no timeout, blocks the loop
    # first, so the timed job's timeout runs out on a loop that cannot run it. The hog is
    # the one to fail; the timed job goes back to its queue and runs to its end elsewhere.
    victim = spawn("-c", "3")
    victim.wait_registered(r)
    timed = AsyncTimed.perform_async(1.0)
    wait_for(lambda: len(ledger.counts("start")) == 1, what="the timed job running")
    hog = AsyncHog.perform_async(60.0)
    wait_for(lambda: not victim.alive, timeout=2 + GRACE + 20, what="the process to retire")
    log = victim.log(10_000)
    assert f"blocked by job {hog}, not by job {timed}" in log, log
    (entry,) = list(RetrySet())
    assert entry.jid == hog and "blocked the event loop" in entry.item["error_message"], log
    rescuer = spawn("-c", "3")
    rescuer.wait_registered(r)
    wait_for(lambda: timed in ledger.counts("done"), timeout=30, what="the timed job to end")
    assert r.get("stat:failed") == b"1", log  # the hog's failure only


def test_an_async_job_a_thread_waits_for_is_given_up_when_it_blocks_the_loop(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    """Around a plain middleware (or run alone as a suspect) an async job runs on a worker
    thread that waits for the loop. One that blocked the loop was never given up: its
    cancellation could not land, the thread waited for good and the process went on
    holding the job, its lease alive."""
    victim = spawn("-c", "2", "-r", "apps.plain_middleware")
    victim.wait_registered(r)
    blocker = AsyncBlocker.perform_async(60.0)
    wait_for(lambda: len(ledger.counts("start")) == 1, what="the blocking job running")
    begun = time.monotonic()
    wait_for(lambda: not victim.alive, timeout=1 + GRACE + 20, what="the process to retire")
    assert time.monotonic() - begun >= 1 + GRACE - 0.5, "not before the grace period"
    (entry,) = list(RetrySet())
    assert entry.jid == blocker and entry.item["error_class"].endswith("JobTimeout")
    assert "retiring this process" in victim.log(10_000)
