"""Test doubles for code that enqueues jobs: Sidekiq::Testing's fake and inline modes.

In both modes the normal push path still runs (argument checks, client middleware), so a
test fails exactly where production would; only the final write to Redis is replaced, and
nothing touches Redis.

- ``fake()``: pushed jobs are kept in memory. ``SendWelcome.jobs`` lists them,
  ``SendWelcome.drain()`` runs them here (re-raising a job's exception in the test),
  ``drain_all()`` runs every queued job, ``clear_all()`` forgets them.
- ``inline()``: each push runs the job at once, in the caller's thread, on the payload a
  worker would read; its exception reaches the caller of ``perform_async``.

Batches work in both, kept in this process: a job run here counts in its batch, and a
batch's callbacks are queued (fake) or run (inline) when it is done, as a worker would.

Each is a switch for the whole process (``testing.fake()`` ... ``testing.disable()``) and a
context manager that restores the previous mode on exit::

    import pytest
    from sidequest import testing

    @pytest.fixture(autouse=True)
    def fake_jobs():
        with testing.fake():
            yield
        testing.clear_all()

    def test_signup_sends_welcome():
        signup("ada@example.com")                       # calls SendWelcome.perform_async(42)
        assert [job["args"] for job in SendWelcome.jobs] == [[42]]
        SendWelcome.drain()                             # runs it; its exception fails the test

    def test_report_end_to_end():
        with testing.inline():
            build_report.perform_async(7)               # has run when this returns
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from types import TracebackType
from typing import Any, Literal, TypeAlias

from sidequest import batch, batch_local, batch_members, client, limiter_held, middleware, registry
from sidequest.errors import UnknownJobError
from sidequest.job import Job, JobFunction, install_testing
from sidequest.limiter import OverLimit
from sidequest.payload import Payload, dumps, loads, now
from sidequest.testing_run import (
    EmptyQueueError,
    EndlessDrainError,
    EndlessInlineError,
    as_fetched,
    run_job,
)
from sidequest.testing_store import Store

Mode = Literal["disabled", "fake", "inline"]
#: A job class, an ``@job`` function, or a wire name (for a job another process defines).
JobRef: TypeAlias = type[Job] | JobFunction[Any, Any] | str
#: Rounds of "run every queued job" before a drain gives up: a job that keeps enqueueing
#: itself would otherwise hang the test suite instead of failing one test.
MAX_ROUNDS = 10_000
#: How deep inline runs may nest (a job's push runs a job that pushes ...): at some 15 frames
#: a level, well short of the recursion limit, whose bare RecursionError names no job.
MAX_INLINE_DEPTH = 25

__all__ = [
    "MAX_INLINE_DEPTH",
    "MAX_ROUNDS",
    "EmptyQueueError",
    "EndlessDrainError",
    "EndlessInlineError",
    "Switch",
    "clear",
    "clear_all",
    "disable",
    "drain",
    "drain_all",
    "fake",
    "inline",
    "jobs_for",
    "mode",
    "perform_one",
    "queued",
]


#: How many inline runs enclose this one (per context: an async job's pushes run on a thread).
_inline_depth = contextvars.ContextVar("sidequest_inline_depth", default=0)


_store = Store()
_mode: Mode = "disabled"
#: Fake mode was on since the last clear_all(): its helpers may be used after it ended.
_fake_used = False


class Switch:
    """Returned by ``fake()``, ``inline()`` and ``disable()``: the mode is already on.

    Used in a ``with`` block, it puts back the mode that was on before the call.
    """

    def __init__(self, new_mode: Mode, override: client.PushOverride | None) -> None:
        global _mode, _fake_used
        _fake_used = _fake_used or new_mode == "fake"
        self.mode = new_mode
        self._previous_mode = _mode
        self._previous_override = client.set_push_override(override)
        self._previous_batches = batch.keep_locally(None if override is None else _batches)
        _mode = new_mode

    def __enter__(self) -> Switch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _mode
        client.set_push_override(self._previous_override)
        batch.keep_locally(self._previous_batches)
        _mode = self._previous_mode


def fake() -> Switch:
    """Keep pushed jobs in memory until a test drains or clears them."""
    return Switch("fake", _fake_push)


def inline() -> Switch:
    """Run each pushed job at once, in the caller's thread."""
    return Switch("inline", _inline_push)


def disable() -> Switch:
    """Push to Redis again (the mode outside tests)."""
    return Switch("disabled", None)


def mode() -> Mode:
    """The mode pushes go through now: "fake", "inline" or "disabled" (Redis)."""
    return _mode


def check_mode(helper: str, found: bool = False) -> None:
    """Refuse a fake-mode helper while pushes go to Redis in a test that never turned fake
    mode on (since the last ``clear_all()``): an empty answer would let it pass while its
    jobs went to Redis, and a drain would push its jobs' jobs there. After a
    ``with testing.fake():`` block, or with jobs kept (``found``), it may read and clear them
    (a teardown's ``SendWelcome.jobs.clear()``)."""
    if _mode == "disabled" and not found and not _fake_used:
        raise RuntimeError(
            f"{helper} works on the jobs fake mode keeps, but fake mode is off: pushes go to"
            f" Redis now. Call it inside 'with testing.fake():' (the README's 'Testing your"
            f" jobs' has a fixture that turns it on for every test)"
        )


def has_jobs(job: JobRef) -> bool:
    """Fake mode keeps at least one job of ``job``."""
    return _store.has(_wire_name(job))


def jobs_for(job: JobRef) -> list[Payload]:
    """The payloads queued for ``job`` in fake mode, oldest first.

    The live list, as in Sidekiq: ``jobs_for(SendWelcome).clear()`` empties the queue.
    """
    name = _wire_name(job)
    check_mode("testing.jobs_for()", _store.has(name))
    return _store.jobs(name)


def queued(queue: str) -> list[Payload]:
    """The payloads of every class queued in ``queue`` in fake mode, in push order."""
    jobs = _store.queued(queue)
    check_mode("testing.queued()", bool(jobs))
    return jobs


def clear(job: JobRef) -> None:
    """Forget ``job``'s queued jobs without running them."""
    _store.clear(_wire_name(job))


def clear_all() -> None:
    """Forget every queued job, and every batch; call it between tests so that none leaks
    into the next."""
    global _fake_used
    _store.clear(None)
    _batches.clear()
    _fake_used = False


def drain(job: JobRef) -> int:
    """Run ``job``'s queued jobs, and the jobs of that class they enqueue, until none is left;
    returns how many. Jobs of other classes they enqueue stay queued (``drain_all`` runs them).

    A job is removed before it runs; the first exception stops the drain and is raised here,
    leaving the jobs after it queued.
    """
    check_mode("testing.drain()")
    name = _wire_name(job)
    _check_known(name, "drain")
    with _kept_here():
        return _drain(name)


def drain_all() -> int:
    """Run every queued job of every class, oldest first, until none is left."""
    check_mode("testing.drain_all()")
    with _kept_here():
        return _drain(None)


def perform_one(job: JobRef) -> Payload:
    """Run the oldest queued job of ``job`` and return its payload."""
    check_mode("testing.perform_one()")
    name = _wire_name(job)
    _check_known(name, "perform_one")
    entry = _store.pop(name)
    if entry is None:
        raise EmptyQueueError(f"perform_one: no {name} job is queued (enqueue one in fake mode)")
    _check_runnable(entry)
    with _kept_here():
        _run(as_fetched(entry[1]))
    return entry[1]


def _kept_here() -> contextlib.AbstractContextManager[object]:
    """A drain after its ``with testing.fake():`` block ended runs its jobs in fake mode
    again: their own pushes stay in memory, for the drain to run too, rather than go to the
    Redis the mode outside tests pushes to."""
    return fake() if _mode == "disabled" else contextlib.nullcontext()


def _drain(name: str | None) -> int:
    ran = rounds = 0
    boundary = -1
    while (entry := _store.pop(name)) is not None:
        seq, job = entry
        _check_runnable(entry)
        if seq > boundary:
            # Every job queued when the last round began has run; what is left was enqueued
            # by those jobs. A chain that never ends is a bug, and should fail, not hang.
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise EndlessDrainError(
                    f"drain gave up after {MAX_ROUNDS} rounds of jobs enqueueing more jobs;"
                    f" the latest is {job['class']} with args {job['args']!r}"
                )
            boundary = _store.last_seq
        _run(as_fetched(job))
        ran += 1
    return ran


def _check_runnable(entry: tuple[int, Payload]) -> None:
    """A queued job whose class is not loaded here (pushed by name for another process, or
    through a push-only stub) cannot run: it stays queued, and the error says what to do."""
    name = str(entry[1].get("class"))
    if registry.find(name) is not None:
        return
    _store.put_back(entry)
    why = registry.near_miss(name) or "a job for another program, pushed by name?"
    raise UnknownJobError(f"a queued {name} job cannot run here: no class of that name is"
                          f" loaded in this process ({why}). It stays queued: check it with"
                          f" testing.jobs_for({name!r}) and remove it with"
                          f" testing.clear({name!r}) before draining")


def _check_known(name: str, helper: str) -> None:
    """A name no class here answers to and nothing was pushed under is a typo: draining it
    would report 0 jobs run and pass the test."""
    if registry.find(name) is None and not _store.has(name):
        hint = registry.near_miss(name) or "check the name"
        raise UnknownJobError(f"{helper}: no job class named {name!r} is loaded here and no"
                              f" job of that name is queued: {hint}")


def _fake_push(jobs: list[Payload], *, members: bool = False) -> None:
    """``members``: the jobs are members of their batches already (a child batch's callbacks,
    which joined its parent as they fell due)."""
    # Round trip through JSON as Redis would: the test sees what a worker gets, and later
    # changes to the caller's argument objects do not leak into the stored job. All are
    # encoded before any is stored, so a bad payload stores nothing, as a failed pipeline.
    stored = [loads(dumps(job)) for job in jobs]
    stamp = now()
    for job in stored:
        if "at" not in job:
            job["enqueued_at"] = stamp
    if not members:
        _join_batches(stored)
    _store.add(stored)


def _inline_push(jobs: list[Payload], *, members: bool = False) -> None:
    if not members:
        _join_batches(jobs)
    for job in jobs:
        _run_inline(as_fetched(job))


def _run_inline(job: Payload) -> None:
    """Run a job pushed in inline mode, refusing a chain of pushes that never ends (a job
    that schedules itself again) with an error that names it, before Python's recursion
    limit does with one that does not."""
    depth = _inline_depth.get()
    if depth >= MAX_INLINE_DEPTH:
        raise EndlessInlineError(
            f"inline mode: {job['class']} (args {job['args']!r}) was pushed by a job run"
            f" inline {MAX_INLINE_DEPTH} levels deep (testing.MAX_INLINE_DEPTH), each pushed"
            " by the one before: taken for a chain that never ends, such as a job that"
            " enqueues itself (inline, a push runs the job at once, even perform_in's). Test"
            " it in fake mode: in 'with testing.fake():' push it, then run one step with"
            " perform_one(); its next push stays queued for the test to check")
    token = _inline_depth.set(depth + 1)
    try:
        with limiter_held.another_job():
            _run(job)
    finally:
        _inline_depth.reset(token)


def _deliver(jobs: list[Payload]) -> None:
    """A batch's due callbacks, queued as the scheduler would (run at once when inline). A
    child batch's callbacks joined its parent as they fell due: they do not join again."""
    if _mode == "inline":
        _inline_push(jobs, members=True)
    else:
        _fake_push(jobs, members=True)


#: The testing modes' batches: their members and callbacks, in this process.
_batches = batch_local.LocalBatches(_deliver)


def _join_batches(jobs: list[Payload]) -> None:
    """A job pushed in ``with batch.jobs():`` joins the batch, as a push to Redis does."""
    for job in jobs:
        ancestry = batch_members.ancestry_of(job)
        if ancestry:
            _batches.add_member(ancestry[0], job["jid"])


def cancel_local(jid: str) -> bool:
    """``sidequest.api.cancel`` in the testing modes. Fake: the job leaves its queue, and its
    batch counts it done, as when a worker drops a cancelled job. Inline: it ran already."""
    job = _store.remove(jid)
    if job is not None:
        _record(job, "success")
    return job is not None


def _record(job: Payload, outcome: str) -> None:
    ancestry = batch_members.ancestry_of(job)
    if ancestry:
        _batches.update(ancestry, str(job.get("jid", "")), outcome)


#: Server middleware for jobs run by the testing modes (drain, perform_one, inline). Separate
#: from ``sidequest.middleware.server`` and empty by default, as in Sidekiq's testing mode,
#: so that production middleware (metrics, connections) does not run in unit tests; add to it
#: what a test needs.
server_middleware: middleware.Chain[middleware.ServerMiddleware] = middleware.Chain()


def _run(job: Payload) -> None:
    """Run one job as a worker's processor does, through the testing server chain, and count
    its outcome in its batch."""
    try:
        with batch.outside():
            run_job(server_middleware, job)
    except OverLimit:
        raise  # a worker would run it again later: not an outcome for its batch yet
    except BaseException:
        _record(job, "failure")
        raise
    _record(job, "success")


def _wire_name(job: JobRef) -> str:
    if isinstance(job, str):
        return job
    if isinstance(job, JobFunction):
        return job.job_class.wire_name()
    return job.wire_name()


# Makes SendWelcome.jobs, .drain(), .perform_one() and .clear() reach this module.
install_testing(sys.modules[__name__])
