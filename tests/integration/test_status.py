"""Job status, progress and results (``store_result = True``): queued or scheduled at the
push, running with progress, succeeded with the JSON result, retrying after a failure and
dead once it will not run again, cancelled or expired when dropped unrun; kept
``result_ttl``. Real Redis, an in-process worker."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, job, keys
from sidequest.api import JobStatus, cancel

gate = threading.Event()


class Export(Job):
    store_result = True
    result_ttl = 600

    def perform(self, rows: int) -> dict[str, Any]:
        self.set_progress(0.5, "halfway")
        gate.wait(10)
        return {"rows": rows, "file": "export.csv"}


class Doomed(Job):
    store_result = True
    retry = 1

    def perform(self) -> None:
        raise RuntimeError("no disk")


@job(store_result=True)
def st_total(a: int, b: int) -> int:
    return a + b


@job(store_result=True)
async def st_total_async(a: int, b: int) -> int:
    return a * b


class Plain(Job):
    def perform(self) -> None:
        pass


class ReportsOnly(Job):
    """Reports progress without store_result: nothing may be kept."""

    def perform(self) -> None:
        self.set_progress(0.5, "half")


class ReturnsADate(Job):
    store_result = True

    def perform(self) -> dict[str, Any]:
        import datetime

        return {"when": datetime.datetime(2026, 1, 2)}


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    gate.clear()


def test_queued_running_with_progress_then_succeeded_with_the_result(r: redis.Redis) -> None:
    jid = Export.perform_async(120)
    assert jid and JobStatus(jid).state == "queued"
    later = Export.perform_in(3600, 1)
    assert later and JobStatus(later).state == "scheduled"
    with running_worker():
        running = wait_for(lambda: (s := JobStatus(jid)).progress and s, what="progress")
        assert (running.state, running.progress, running.message) == ("running", 0.5,
                                                                      "halfway")
        assert running.result is None
        gate.set()
        done = wait_for(lambda: (s := JobStatus(jid)).state == "succeeded" and s,
                        what="the job to succeed")
    assert done.result == {"rows": 120, "file": "export.csv"}
    assert done.ttl is not None and 590 <= done.ttl <= 600


def test_a_failure_is_retrying_and_death_is_dead() -> None:
    jid = Doomed.perform_async()
    with running_worker():
        wait_for(lambda: JobStatus(jid).state == "retrying", what="the first failure")
    assert JobStatus(jid).ttl is not None and JobStatus(jid).ttl > 80_000  # the default, 24 h


class RetriesLater(Job):
    store_result = True
    result_ttl = 60

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: Any) -> float:
        return 3600

    def perform(self) -> None:
        raise RuntimeError("try again in an hour")


def test_a_retrying_jobs_status_is_kept_until_its_retry_is_due(r: redis.Redis) -> None:
    jid = RetriesLater.perform_async()
    with running_worker():
        wait_for(lambda: r.zcard("retry") == 1, what="the job in the retry set")
    assert JobStatus(jid).state == "retrying"
    assert 3600 < r.ttl(f"sq:status:{jid}") <= 3660 + 60, "result_ttl past the retry"


def test_dead_after_its_last_retry(r: redis.Redis) -> None:
    jid = Doomed.set(retry=False).perform_async()
    with running_worker():
        wait_for(lambda: JobStatus(jid).state == "dead", what="the job to be dead")
    # Its error, as RQ's exc_info shows it, without a search of the dead set.
    dead = JobStatus(jid)
    assert (dead.error_class, dead.error_message) == ("RuntimeError", "no disk")


def test_a_retrying_job_says_its_error_and_a_retry_by_hand_says_queued(r: redis.Redis) -> None:
    from sidequest.api import DeadSet, RetrySet

    jid = RetriesLater.perform_async()
    with running_worker():
        wait_for(lambda: r.zcard("retry") == 1, what="the job in the retry set")
    retrying = JobStatus(jid)
    assert retrying.state == "retrying" and retrying.error_class == "RuntimeError"
    assert retrying.error_message == "try again in an hour"
    # "Retry now" from the dashboard or the API: queued again, with no error to show, in
    # the move's own step (before, it still said "retrying", or "dead" below, until a worker
    # took it: a page that stops polling at "dead" never saw the run).
    (entry,) = list(RetrySet())
    assert entry.retry()
    queued = JobStatus(jid)
    assert (queued.state, queued.error_class) == ("queued", None)
    assert 0 < r.ttl(f"sq:status:{jid}") <= 60
    doomed = Doomed.set(retry=0).perform_async()  # straight to the dead set
    with running_worker():
        wait_for(lambda: JobStatus(doomed).state == "dead", what="the job to be dead")
    assert DeadSet().retry_all() == 1 and JobStatus(doomed).state == "queued"


def test_jobs_that_do_not_store_results_leave_nothing(r: redis.Redis) -> None:
    jid = Plain.perform_async()
    with running_worker():
        wait_for(lambda: r.llen("queue:default") == 0, what="the job to run")
    assert JobStatus(jid).state is None and not r.exists(keys.status(jid))


def test_progress_without_store_result_is_not_kept_and_says_so(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """It stayed "running" for a day after the job ended."""
    jids = [ReportsOnly.perform_async(), ReportsOnly.perform_async()]
    with caplog.at_level("WARNING", logger="sidequest"), running_worker():
        wait_for(lambda: r.get("stat:processed") == "2", what="both jobs to run")
    assert not any(r.exists(keys.status(jid)) for jid in jids if jid)
    told = [rec.getMessage() for rec in caplog.records if "set_progress" in rec.getMessage()]
    assert told == [f"{__name__}.ReportsOnly.set_progress: nothing is kept, as the class does"
                    " not set store_result = True (set it to read progress with JobStatus)"]


@pytest.mark.parametrize(("fraction", "says"), [
    ("half", "got 'half'"), (50, r"got 50 \(50% is 0.5\)"), (None, "got None"),
    (True, "got True"), (-0.1, "got -0.1"), (1.5, r"got 1.5$")])
def test_a_progress_that_is_no_fraction_says_what_to_write(fraction: Any, says: str) -> None:
    job_object = Export()
    job_object.payload = {"class": "Export", "jid": "x" * 24, "store_result": True}
    with pytest.raises(ValueError, match=rf"a fraction from 0 to 1, e.g. 0.5 .*; {says}"):
        job_object.set_progress(fraction)


def test_a_result_that_is_not_json_is_noted_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    jid = ReturnsADate.perform_async()
    assert jid
    with caplog.at_level("WARNING", logger="sidequest"), running_worker():
        done = wait_for(lambda: (s := JobStatus(jid)).state == "succeeded" and s,
                        what="the job to succeed")
    assert set(done.result) == {"unserializable"}
    assert any(f"ReturnsADate {jid} returned a value that is not JSON" in rec.getMessage()
               for rec in caplog.records)


def test_a_function_job_stores_what_it_returns() -> None:
    jids = [st_total.perform_async(2, 3), st_total_async.perform_async(2, 3)]
    with running_worker():
        done = [wait_for(lambda jid=jid: (s := JobStatus(jid)).state == "succeeded" and s,
                         what="the job to succeed") for jid in jids]
    assert [status.result for status in done] == [5, 6]


class Stale(Job):
    store_result = True
    expires_in = 0.2

    def perform(self) -> None:
        pass


@job(store_result=True, expires_in=0.2)
async def st_stale_async() -> None:
    pass


started = threading.Event()


@job(store_result=True)
async def st_waiting() -> None:
    started.set()
    await asyncio.sleep(30)


def test_a_job_dropped_unrun_ends_cancelled_or_expired() -> None:
    """A page polling a job that will never run sees it end, instead of waiting on its first
    state for result_ttl."""
    stale = [Stale.perform_async(), st_stale_async.perform_async()]
    queued = [Export.perform_async(1), st_total_async.perform_async(1, 2)]
    scheduled = Export.perform_in(3600, 2)
    assert all(stale) and all(queued) and scheduled
    assert cancel(scheduled) and JobStatus(scheduled).state == "cancelled"  # by the API
    for jid in queued:
        cancel(jid)  # dropped by the worker that fetches it
    deadline = time.time() + 0.25
    wait_for(lambda: time.time() > deadline, what="the deadline to pass")
    with running_worker():
        for jid, state in [*((j, "expired") for j in stale), *((j, "cancelled") for j in queued)]:
            wait_for(lambda jid=jid, state=state: JobStatus(jid).state == state,
                     what=f"{jid} to be {state}")


def test_an_async_job_cancelled_while_running_ends_cancelled() -> None:
    started.clear()
    jid = st_waiting.perform_async()
    assert jid
    with running_worker():
        wait_for(started.is_set, what="the job to start")
        cancel(jid)
        wait_for(lambda: JobStatus(jid).state == "cancelled", what="the job to be cancelled")


class Stoppable(Job):
    """A thread job that checks cancelled() between steps and returns."""

    store_result = True

    def perform(self) -> str:
        started.set()
        deadline = time.monotonic() + 20
        while not self.cancelled() and time.monotonic() < deadline:
            time.sleep(0.05)
        return "stopped early"


def test_a_thread_job_cancelled_while_running_ends_cancelled() -> None:
    started.clear()
    jid = Stoppable.perform_async()
    assert jid
    with running_worker():
        wait_for(started.is_set, what="the job to start")
        cancel(jid)
        wait_for(lambda: JobStatus(jid).state == "cancelled", what="the job to be cancelled")


def test_a_scheduled_jobs_status_is_kept_from_when_it_is_due(r: redis.Redis) -> None:
    # Counted from the push, a job deferred past result_ttl had no status until it ran.
    jid = Export.set(result_ttl=60).perform_in(3600, 1)
    ttl = r.ttl(f"sq:status:{jid}")
    assert 3600 < ttl <= 3660, ttl
    assert JobStatus(jid).state == "scheduled"


def test_a_result_of_a_huge_integer_is_read_in_any_process(r: redis.Redis) -> None:
    """The worker lifts Python's 4,300-digit limit on int parsing; a process reading the
    result need not."""
    huge = 10**5000 + 7
    text = "1" + "0" * 4999 + "7"  # str(huge) is refused here, as in any process
    r.hset(keys.status("h" * 24), mapping={"state": "succeeded", "result": text})
    assert JobStatus("h" * 24).result == huge


def test_a_field_another_program_wrote_in_bytes_that_are_not_utf8_is_read_past(
        r: redis.Redis) -> None:
    r.hset(keys.status("e" * 24), mapping={"state": "running", b"odd\xff": "1"})
    assert JobStatus("e" * 24).state == "running"


reported, resume = threading.Event(), threading.Event()
progress_took: list[float] = []


class AsyncExport(Job):
    """Reports progress from its event loop while Redis holds every write, then ends."""

    store_result = True

    async def perform(self) -> str:
        await asyncio.to_thread(resume.wait, 10)
        started = time.monotonic()
        self.set_progress(0.5, "halfway")
        progress_took.append(time.monotonic() - started)
        reported.set()
        return "done"


def test_progress_from_an_async_job_does_not_hold_its_event_loop(r: redis.Redis) -> None:
    """A blocking write there held every async job of the process while Redis was slow;
    written in the background, it must still land before the job's end, or "running"
    would replace "succeeded"."""
    progress_took.clear()
    with running_worker():
        jid = AsyncExport.perform_async()
        wait_for(lambda: JobStatus(jid).state == "running", what="the job running")
        r.execute_command("CLIENT", "PAUSE", 1500, "WRITE")  # Redis slow for writes
        resume.set()
        done = wait_for(lambda: (s := JobStatus(jid)).state == "succeeded" and s,
                        what="the job to succeed")
    assert reported.is_set() and progress_took[0] < 0.5, progress_took
    assert (done.progress, done.message, done.result) == (0.5, "halfway", "done")


@pytest.mark.parametrize("jid", [None, 123, ""])
def test_a_status_asked_for_no_jid_says_what_it_needs(jid: Any) -> None:
    with pytest.raises(ValueError, match=r"JobStatus\(\) needs a job id \(jid\) string"):
        JobStatus(jid)
