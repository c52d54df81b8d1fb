"""Async jobs seen from outside while they run and when they misbehave: a loop-blocking job is
named in a warning, running async jobs show on the Busy page's data (WorkSet) and in the
process's busy count, and a graceful stop cancels the late ones past the shutdown timeout
and pushes them back to their queue. Real Redis, in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import pytest
import redis

import sidequest
from helpers import running_worker, wait_for
from sidequest import ConfigError, Job, hooks, keys
from sidequest.api import JobStatus, Queue, WorkSet, metrics
from sidequest.worker import lifecycle

started = threading.Event()
finished: list[str] = []


class BlocksTheLoop(Job):
    async def perform(self) -> None:
        time.sleep(0.4)  # a sync call inside async def: the mistake the warning is for
        finished.append(self.jid)


class Waits(Job):
    async def perform(self, seconds: float) -> None:
        started.set()
        await asyncio.sleep(seconds)
        finished.append(self.jid)


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    started.clear()
    finished.clear()


def test_a_job_blocking_the_loop_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sidequest")
    with running_worker():
        jid = BlocksTheLoop.perform_async()
        wait_for(lambda: jid in finished, what="the blocking job to end")
        # The warning that names the job: a loaded machine can stall the loop before the job
        # starts too, and that warning (rightly) names no job.
        wait_for(lambda: any("was blocked" in r.getMessage() and "BlocksTheLoop"
                             in r.getMessage() for r in caplog.records),
                 what="the blocked-loop warning naming BlocksTheLoop")


class StallMeter(threading.Thread):
    """A control thread that sleeps as the loop's watchdog does and keeps its worst lateness:
    what the machine itself (another process's load) did to this process's threads."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.worst_ms = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            asked = time.monotonic()
            time.sleep(0.05)
            self.worst_ms = max(self.worst_ms, (time.monotonic() - asked - 0.05) * 1000)


def test_a_quiet_loop_gives_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sidequest")
    meter = StallMeter()
    meter.start()
    with running_worker():
        jids = Waits.perform_bulk([[0.3]] * 20)
        wait_for(lambda: len(finished) == 20, what="20 awaiting jobs")
    meter.done.set()
    assert set(finished) == set(jids)
    # On a loaded machine any thread can be held up past 100 ms; a warning is excused only
    # when the control thread of this process was held up about as long. Two threads that
    # queue for one interpreter lock on a busy machine wait unequally (a CI run saw 218 ms
    # for the loop, 155 for the control thread), hence up to twice as long; on a quiet
    # machine the control thread's few milliseconds excuse no warning at all.
    blocked = [r.args[0] for r in caplog.records if "was blocked" in r.getMessage()
               if isinstance(r.args, tuple)]
    excused = max(2 * meter.worst_ms, meter.worst_ms + 50)
    assert all(ms <= excused for ms in blocked), (blocked, meter.worst_ms)


def test_running_async_jobs_show_on_the_busy_page() -> None:
    with running_worker(async_concurrency=10):
        jids = Waits.perform_bulk([[3.0]] * 5)
        works = wait_for(lambda: [w for w in WorkSet() if w.job.klass == Waits.wire_name()]
                         if len(list(WorkSet())) == 5 else None, what="5 busy entries")
        assert {w.job.jid for w in works} == set(jids)
        assert all(w.tid.startswith("async-") for w in works)
        wait_for(lambda: WorkSet().size == 5, what="the busy count in the heartbeat")
        wait_for(lambda: len(finished) == 5, what="the jobs to end")
        wait_for(lambda: not list(WorkSet()), what="the busy entries to go")


class StoredWaits(Waits):
    store_result = True


@pytest.mark.parametrize("cls", [Waits, StoredWaits])
def test_a_graceful_stop_pushes_late_async_jobs_back(cls: type[Waits]) -> None:
    with running_worker(timeout=0.5) as launcher:
        jid = cls.perform_async(60.0)
        assert started.wait(10), "the job did not start"
        begun = time.monotonic()
        assert launcher.stop() is False, "a job had to be pushed back"
        assert time.monotonic() - begun < 5, "the stop waited past its timeout"
    assert finished == []
    queue = Queue("default")
    assert [j.jid for j in queue] == [jid]
    if cls.store_result:  # where it is, in its queue: it said "retrying"
        assert JobStatus(jid).state == "queued"


class StoredBlocksTheLoop(Job):
    store_result = True

    async def perform(self) -> None:
        started.set()
        time.sleep(3)  # holds the loop past the stop's deadline


def test_a_late_async_job_on_a_blocked_loop_is_queued_again_in_its_status(
        caplog: pytest.LogCaptureFixture) -> None:
    """Its "queued" was written on the loop, which the job itself held: pushed back, it
    said "running" for as long as it waited in its queue."""
    with caplog.at_level(logging.WARNING, logger="sidequest"), \
            running_worker(timeout=0.5) as launcher:
        jid = StoredBlocksTheLoop.perform_async()
        assert started.wait(10), "the job did not start"
        assert launcher.stop() is False, "a job had to be pushed back"
    assert [j.jid for j in Queue("default")] == [jid]
    assert JobStatus(jid).state == "queued"
    pushed = [r.getMessage() for r in caplog.records if "pushing it back" in r.getMessage()]
    assert pushed and f"StoredBlocksTheLoop jid={jid}" in pushed[0], pushed


class Breaks(Job):
    retry = False

    async def perform(self) -> None:
        await asyncio.sleep(0.01)
        raise LookupError("no such row")


def test_async_runs_are_counted_in_the_metrics_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sidequest")
    with running_worker():
        ok = Waits.perform_bulk([[0.2]] * 3)
        bad = Breaks.perform_async()
        wait_for(lambda: len(finished) == 3, what="the three jobs to end")
        # The metrics recorder flushes on stop; read them after.
    waits, _ = metrics.for_class(Waits.wire_name())
    breaks, _ = metrics.for_class(Breaks.wire_name())
    assert (waits.processed, waits.failed) == (3, 0)
    assert waits.total_ms >= 3 * 200 - 30, "each run's time is its await, not a thread's"
    assert (breaks.processed, breaks.failed) == (1, 1)
    lines = [(r.getMessage(), getattr(r, "jid", None)) for r in caplog.records]
    # Through the app's own logging (an embedded worker), each line leads with its job.
    waits = f"class={Waits.wire_name()} jid="
    for jid in ok:
        assert (f"{waits}{jid} start", jid) in lines, lines
        assert any(msg.startswith(f"{waits}{jid} elapsed=") and msg.endswith(" done")
                   and at == jid for msg, at in lines), lines
    assert any(f"jid={bad} " in msg and " fail: LookupError" in msg and jid == bad
               for msg, jid in lines), lines


class TimedWaits(Waits):
    timeout = 2


class Plain(Job):
    queue = "critical"

    def perform(self) -> None:
        finished.append(f"plain-{self.jid}")


def test_a_wait_for_a_slot_counts_toward_no_time_limit_and_holds_no_thread(
        caplog: pytest.LogCaptureFixture) -> None:
    # One slot, six 1.2 s jobs with a 2 s limit: the later ones waited 6 s in all. They
    # failed as stuck past their limit, and the process retired, when the wait counted.
    caplog.set_level(logging.INFO, logger="sidequest")
    with running_worker(async_concurrency=1, concurrency=3,
                        queues=(("critical", 0), ("default", 0))):
        jids = TimedWaits.perform_bulk([[1.2]] * 6)
        wait_for(lambda: finished, what="the first job to end")
        # While async jobs wait for the slot, a plain job still gets a thread at once.
        pushed = time.monotonic()
        plain = Plain.perform_async()
        wait_for(lambda: f"plain-{plain}" in finished, timeout=1.0, what="the plain job")
        assert time.monotonic() - pushed < 1.0
        # Only the job with the slot is running: the others wait, not counted as busy.
        assert len(list(WorkSet())) <= 2  # this job, and at most one plain job
        wait_for(lambda: len([j for j in finished if not j.startswith("plain-")]) == 6,
                 timeout=30, what="six jobs, one at a time")
    assert set(finished) - {f"plain-{plain}"} == set(jids)
    messages = [r.getMessage() for r in caplog.records]
    assert not any("did not stop" in m or "past its timeout" in m for m in messages), messages
    elapsed = [float(m.split("elapsed=")[1].split()[0]) for m in messages
               if "elapsed=" in m and TimedWaits.wire_name() in m]
    assert len(elapsed) == 6 and max(elapsed) < 2, elapsed  # its own run, not its wait


def test_a_stop_pushes_back_async_jobs_that_wait_for_a_slot() -> None:
    with running_worker(async_concurrency=1, concurrency=3, timeout=0.5) as launcher:
        jids = Waits.perform_bulk([[60.0]] * 6)
        assert started.wait(10), "the job did not start"
        wait_for(lambda: Queue("default").size == 0, what="every job fetched")
        begun = time.monotonic()
        assert launcher.stop() is False, "a job had to be pushed back"
        assert time.monotonic() - begun < 5, "the stop waited past its timeout"
    assert finished == []
    assert sorted(j.jid for j in Queue("default")) == sorted(jids)


def test_a_job_cancelled_while_it_waits_for_a_slot_is_dropped_as_cancelled() -> None:
    # Dropped by the guard when it gets its slot: its status says cancelled (and its batch
    # and unique lock hear of it), instead of an acknowledgement that told none of them.
    from sidequest.api import cancel

    with running_worker(async_concurrency=1, concurrency=2):
        first = StoredWaits.perform_async(1.0)
        assert started.wait(10), "the first job did not start"
        waiting = StoredWaits.perform_async(0.1)
        wait_for(lambda: Queue("default").size == 0, what="the second job fetched")
        cancel(waiting)
        wait_for(lambda: JobStatus(waiting).state == "cancelled", timeout=15,
                 what="the waiting job dropped as cancelled")
        wait_for(lambda: first in finished, what="the first job to end")
    assert waiting not in finished


def test_a_quiet_puts_async_jobs_waiting_for_a_slot_back() -> None:
    # Not started, so another process (the new one of a deploy) can run them now.
    with running_worker(async_concurrency=1, concurrency=3) as launcher:
        jids = Waits.perform_bulk([[3.0]] * 5)
        assert started.wait(10), "the first job did not start"
        wait_for(lambda: Queue("default").size == 0, what="every job fetched")
        launcher.quiet()
        wait_for(lambda: Queue("default").size == 4, what="the 4 waiting jobs back")
        back = {j.jid for j in Queue("default")}
        wait_for(lambda: len(finished) == 1, what="the running one to finish")
    assert len(back) == 4 and back < set(jids) and finished[0] not in back


class Stubborn(Job):
    async def perform(self) -> None:
        started.set()
        for _ in range(300):  # ignores its cancellation, as careless code does
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.1)


def test_a_stop_ends_on_time_past_an_async_job_that_ignores_its_cancellation() -> None:
    # It waited 2 s for the cancelled jobs to end: past the watchdog's 1.5 s, so a real
    # process was killed, its unstarted jobs left in progress.
    with running_worker(async_concurrency=1, concurrency=2, timeout=0.5) as launcher:
        stubborn = Stubborn.perform_async()
        assert started.wait(10), "the stubborn job did not start"
        waiting = Waits.perform_bulk([[0.1]] * 3)
        wait_for(lambda: Queue("default").size == 0, what="every job fetched")
        begun = time.monotonic()
        assert launcher.stop() is False
        assert time.monotonic() - begun < 0.5 + 1.5, "past the watchdog's grace"
    assert sorted(j.jid for j in Queue("default")) == sorted([stubborn, *waiting])


# The application's lifecycle hooks (sidequest.on_startup, on_quiet, on_shutdown).

@pytest.fixture
def life(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hooks registered by a test only, and what they saw."""
    for moment in hooks.life_hooks:
        monkeypatch.setitem(hooks.life_hooks, moment, [])
    return []


class UsesTheClient(Job):
    async def perform(self) -> None:
        shared = clients["http"]
        assert shared["loop"] is asyncio.get_running_loop(), "made on another loop"
        finished.append(self.jid)


clients: dict[str, dict[str, object]] = {}


def test_hooks_run_in_order_and_async_ones_on_the_jobs_loop(life: list[str]) -> None:
    @sidequest.on_startup
    def first() -> None:
        life.append("startup")

    @sidequest.on_startup
    async def open_client() -> None:
        clients["http"] = {"loop": asyncio.get_running_loop()}
        life.append("async startup")

    @sidequest.on_quiet
    def quieted() -> None:
        life.append("quiet")

    @sidequest.on_shutdown
    async def close_client() -> None:
        assert clients.pop("http")["loop"] is asyncio.get_running_loop()
        life.append(f"async shutdown after {len(finished)} job")

    sidequest.on_shutdown(first)  # one function at several moments
    sidequest.on_startup(first)  # registered twice (a module imported twice): runs once
    with running_worker():
        assert life == ["startup", "async startup"]
        jid = UsesTheClient.perform_async()
        wait_for(lambda: jid in finished, what="the job using the hook's client")
    assert life == ["startup", "async startup", "quiet", "async shutdown after 1 job",
                    "startup"], life


def test_a_startup_hook_that_raises_stops_the_worker_before_any_job(life: list[str]) -> None:
    @sidequest.on_startup
    def needs_a_key() -> None:
        raise RuntimeError("API_KEY is not set")

    @sidequest.on_shutdown
    def never() -> None:
        life.append("shutdown")

    Waits.perform_async(0)
    with pytest.raises(ConfigError, match=r"the on_startup hook .*needs_a_key raised"
                                          r" RuntimeError: API_KEY is not set; the worker did"
                                          r" not start"), running_worker():
        pass
    assert Queue("default").size == 1 and life == []


def test_a_failing_shutdown_hook_is_logged_and_the_next_runs(
        life: list[str], caplog: pytest.LogCaptureFixture) -> None:
    @sidequest.on_shutdown
    def breaks() -> None:
        raise OSError("already closed")

    @sidequest.on_shutdown
    async def times_out_itself() -> None:
        await asyncio.wait_for(asyncio.sleep(5), 0.01)  # its own TimeoutError: a failure

    @sidequest.on_shutdown
    def runs() -> None:
        life.append("runs")

    @sidequest.on_shutdown
    async def hangs() -> None:
        await asyncio.sleep(60)

    @sidequest.on_shutdown
    def too_late() -> None:
        life.append("too late")

    caplog.set_level(logging.ERROR, logger="sidequest")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lifecycle, "BUDGET", 1.0)
        with running_worker():
            pass
    assert life == ["runs"], life
    said = [r.getMessage() for r in caplog.records]
    assert any("on_shutdown hook" in m and "breaks raised" in m for m in said), said
    assert any("times_out_itself raised" in m for m in said), said
    assert any("hangs did not finish in time" in m for m in said), said
    assert any("too_late skipped: the hooks' 1 s were spent" in m for m in said), said


quiet_seen = threading.Event()


class WaitsForTheQuietHook(Job):
    def perform(self) -> None:
        finished.append(f"quiet hook ran first: {quiet_seen.wait(10)}")


def test_the_quiet_hooks_run_at_the_start_of_a_stop(life: list[str]) -> None:
    # Not once the running jobs are done (Sidekiq's :quiet comes first): this job ends only
    # when the quiet hook has run, or 10 s later.
    quiet_seen.clear()
    sidequest.on_quiet(quiet_seen.set)
    with running_worker(timeout=15):
        WaitsForTheQuietHook.perform_async()
        wait_for(lambda: WorkSet().size == 1, what="the job to run")
    assert finished == ["quiet hook ran first: True"]


release = threading.Event()


class Holds(Job):
    def perform(self) -> None:
        release.wait(10)


def test_the_watchdog_is_told_which_jobs_run() -> None:
    # What it names, should it have to kill the process (worker/watchdog.py).
    release.clear()
    with running_worker() as launcher:
        sync_jid = Holds.perform_async()
        async_jid = Waits.perform_async(5)
        wait_for(lambda: WorkSet().size == 2 and started.is_set(), what="both jobs to run")
        named = launcher.manager.running_names()
        release.set()
    assert named == f"{Holds.wire_name()} jid={sync_jid}, jid={async_jid}", named


RELEASE = threading.Event()


class HoldsASlot(Job):
    """Runs past the shutdown timeout inside a concurrency limiter of one."""

    def perform(self) -> None:
        with sidequest.limiter.concurrent("lifecycle-one", 1, lock_timeout=60):
            started.set()
            RELEASE.wait(10)


def test_a_job_running_past_the_deadline_stays_ours_while_the_shutdown_hooks_run(
        life: list[str]) -> None:
    """It runs on in its thread until the process exits: pushed back (its slot freed) before
    the hooks' seconds, another process ran it meanwhile, over its limiter's limit."""
    from sidequest import connection, keys

    seen: dict[str, int] = {}

    @sidequest.on_shutdown
    def look() -> None:
        client = connection.client()
        seen["queued"] = int(client.llen(keys.queue("default")))
        seen["slots"] = int(client.zcard("sq:limiter:lifecycle-one"))

    RELEASE.clear()
    HoldsASlot.perform_async()
    try:
        with running_worker(timeout=0.3):
            wait_for(started.is_set, what="the job holding its slot")
        assert seen == {"queued": 0, "slots": 1}  # at the hook: still ours, slot held
        client = connection.client()
        assert client.llen(keys.queue("default")) == 1  # then pushed back
        assert client.zcard("sq:limiter:lifecycle-one") == 0  # and its slot freed
    finally:
        RELEASE.set()


def test_a_worker_that_cannot_start_after_its_startup_hooks_runs_its_shutdown_hooks(
        life: list[str]) -> None:
    """Its metrics port taken: a -P replacement that failed so was restarted again and
    again, each try opening what its startup hooks open, never closing it."""
    import socket

    from sidequest.config import build
    from sidequest.worker.launcher import Launcher

    sidequest.on_startup(lambda: life.append("startup"))
    sidequest.on_shutdown(lambda: life.append("shutdown"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = build(metrics_port=taken.getsockname()[1], metrics_host="127.0.0.1")
        with pytest.raises(ConfigError, match="cannot listen"):
            Launcher(config).run(install_signals=False)
    assert life == ["startup", "shutdown"]


def test_redis_failing_right_after_the_first_beat_exits_1_and_leaves_no_record(
        life: list[str], r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection lost after the first beat was taken for a stop during the wait for
    Redis: the worker exited 0 (systemd's Restart=on-failure left it down), and its process
    record stayed listed, and its lease stayed, for their TTLs."""
    from sidequest.config import build
    from sidequest.worker import launcher as launcher_module

    def lost(client: object) -> None:
        raise redis.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(launcher_module, "check_redis", lost)
    sidequest.on_shutdown(lambda: life.append("shutdown"))
    worker = launcher_module.Launcher(build())
    with pytest.raises(SystemExit) as exited:
        worker.run(install_signals=False)
    assert exited.value.code == 1
    assert life == ["shutdown"]
    assert not r.exists(keys.lease(worker.identity))  # nothing for a reaper to wait on
    assert worker.identity not in r.smembers("processes") | r.smembers(keys.SQ_PROCESSES)


shared_runs: list[int] = []


class SharesAJid(Job):
    async def perform(self, n: int) -> None:
        await asyncio.sleep(0.3)
        shared_runs.append(n)


def test_async_jobs_sharing_a_jid_are_each_run_and_acknowledged(r: redis.Redis) -> None:
    """A jid set by hand and pushed twice: both ran at once here, and the second's end, keyed
    by the jid, found the first's gone, was taken for a job given up on and never
    acknowledged; the stop pushed it back, to run again."""
    shared_runs.clear()
    with running_worker() as launcher:
        SharesAJid.set(jid="report-7").perform_async(1)
        SharesAJid.set(jid="report-7").perform_async(2)
        wait_for(lambda: sorted(shared_runs) == [1, 2], what="both runs")
        wait_for(lambda: r.llen(keys.inprogress(launcher.identity)) == 0,
                 what="both acknowledged")
    assert Queue("default").size == 0, "nothing to push back at the stop"
