"""SQLAlchemy integration: a fresh session for every job, and pushes that wait for the
database commit.

    pip install 'sidequest[sqlalchemy]'

    from sqlalchemy.orm import scoped_session, sessionmaker
    from sidequest.contrib.sqlalchemy import after_commit, session_per_job

    Session = scoped_session(sessionmaker(engine))
    session_per_job(Session)          # in the module the worker loads (-r)

    with Session() as session, session.begin():
        session.add(user)
        after_commit(session, SendWelcome.perform_async, user.id)

``session_per_job`` removes the scoped session after each job, in the job's own thread, so
that no job sees another's objects or keeps a connection out of the pool.

``async def perform`` jobs all run on one thread, the event loop's, many at once, so a
thread-local ``scoped_session`` gives them all the same session there: one job's commit
commits what the others have added so far. Give them a session each with an
``async_scoped_session`` scoped to the task, which ``session_per_job`` removes (awaiting
``remove()``) in the job's own task when it ends:

    from sqlalchemy.ext.asyncio import async_scoped_session, async_sessionmaker

    AsyncSession = async_scoped_session(async_sessionmaker(async_engine),
                                        scopefunc=asyncio.current_task)
    session_per_job(AsyncSession)     # beside session_per_job(Session) for the sync jobs

With a thread-local ``scoped_session``, async jobs still work, sharing it: it is removed
when the last async job running ends (not at each job's end, which would take it from
under the others), and a warning says so once. Either way the middleware has a coroutine
form, so async jobs run on the loop, not one per worker thread.

``after_commit`` pushes when the session's transaction commits and never if it rolls back
or the session is closed first, so a worker never gets a job for a row it cannot see yet,
nor for one that was never written. A push whose arguments ``perform`` cannot take is
refused by ``after_commit`` itself, before anything is written. A push that fails at the
commit (Redis down) does not stop the others; ``commit()`` then raises one
``AfterCommitFailed``, which says the transaction has committed and lists the failed pushes
(``.failed``) for the caller to push again:

    try:
        session.commit()
    except AfterCommitFailed as exc:   # a RedisUnavailable when Redis was the cause
        for failed in exc.failed:
            failed.push_again()          # later, or record them to push when Redis is back
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

try:
    from sqlalchemy import event
    from sqlalchemy.exc import InvalidRequestError
    from sqlalchemy.orm import Session, SessionTransaction, scoped_session
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("sidequest.contrib.sqlalchemy needs SQLAlchemy: "
                      "pip install 'sidequest[sqlalchemy]'") from exc

from sidequest import batch
from sidequest.contrib.sqlalchemy_sessions import SessionPerJob, session_per_job
from sidequest.errors import ConfigError, RedisUnavailable, SidequestError
from sidequest.job import Job, JobFunction
from sidequest.payload import KWARGS, check_args
from sidequest.pushcheck import check_runnable
from sidequest.setter import _Setter
from sidequest.signatures import check_call

log = logging.getLogger("sidequest")

__all__ = ["AfterCommitConfigError", "AfterCommitFailed", "AfterCommitRedisUnavailable",
           "FailedPush", "SessionPerJob", "after_commit", "session_per_job"]

_PENDING = "sidequest.after_commit"
#: The committed transaction and the AfterCommitFailed its failed pushes make, kept from the
#: commit to the transaction's end, where it is raised.
_FAILED = "sidequest.after_commit.failed"
#: The enqueue methods whose arguments after_commit checks: each takes perform's arguments
#: as its ``*args`` and ``**kwargs`` (after the time, for perform_in and perform_at).
_PUSHES = ("perform_async", "perform_in", "perform_at")
#: How much of each job's arguments, and of the first error, the message shows.
_SHOWN_ARGS, _SHOWN_JOBS, _SHOWN_ERROR = 60, 5, 200


def after_commit(session: Session | scoped_session[Any], push: Callable[..., Any], *args: Any,
                 **kwargs: Any) -> None:
    """Call ``push(*args, **kwargs)`` (a ``perform_async``, ``perform_in``, ...) once the
    session's current transaction commits; forget it if the transaction rolls back or the
    session is closed first. Inside a savepoint (``begin_nested``), its rollback forgets the
    pushes made in it, and only those: the ones made before it still happen at the commit.
    With no transaction begun yet, this begins one, as ``session.add()`` would. ``session``
    may be a ``scoped_session`` (Flask-SQLAlchemy's ``db.session``): its current session is
    used. The arguments of a job's enqueue method are checked against its ``perform`` now;
    pushes that fail at the commit make ``commit()`` raise ``AfterCommitFailed``."""
    if not callable(push):
        raise TypeError(f"after_commit needs the push itself and its arguments, e.g."
                        f" after_commit(session, SendWelcome.perform_async, user.id), got"
                        f" {push!r}: the result of a push made already")
    if inspect.iscoroutinefunction(push):
        # Its coroutine, made at the commit, would never be awaited: the job never pushed.
        raise TypeError(f"after_commit runs the push in the thread that commits: give it"
                        f" {_push_name(push).replace('.aperform_', '.perform_')}, not the"
                        f" async {_push_name(push)}")
    if batch.current() is not None:
        # The block usually ends before the commit: the batch was sealed empty (its callbacks
        # run at once), and the jobs pushed at the commit were no members of it.
        raise ValueError("after_commit cannot be used inside `with batch.jobs():` (the batch"
                         " is sealed when the block ends, before the commit): commit first,"
                         " then push the batch, or push its jobs with perform_async inside"
                         " the block")
    _check_push(push, args, kwargs)
    _defer(session() if isinstance(session, scoped_session) else session, (push, args, kwargs))


@dataclass(frozen=True)
class FailedPush:
    """A push deferred by ``after_commit`` that raised after its transaction had committed:
    its job was not enqueued (after a lost reply, ``error`` says it may have been)."""

    push: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    error: Exception

    def push_again(self) -> Any:
        """Make the push again, now: its result (the jid), or the error it raises."""
        return self.push(*self.args, **self.kwargs)

    def __str__(self) -> str:
        shown = [repr(arg) for arg in self.args]
        shown += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        arguments = ", ".join(shown)
        if len(arguments) > _SHOWN_ARGS:
            arguments = arguments[:_SHOWN_ARGS] + "..."
        return f"{_push_name(self.push)}({arguments}): {type(self.error).__name__}"


class AfterCommitFailed(SidequestError):
    """Pushes deferred by ``after_commit`` failed after the transaction had committed: its
    rows are written, so retrying the transaction would write them twice. ``failed`` holds
    those pushes (each ``push_again()`` makes it again), ``total`` how many were deferred.
    Raised as its ``AfterCommitRedisUnavailable`` or ``AfterCommitConfigError`` subclass when
    every failure was that kind, so that code catching those catches it still."""

    def __init__(self, failed: list[FailedPush], total: int) -> None:
        self.failed = failed
        self.total = total
        super().__init__(_failure_message(failed, total))


class AfterCommitRedisUnavailable(AfterCommitFailed, RedisUnavailable):
    """``AfterCommitFailed`` when every failed push could not reach Redis."""


class AfterCommitConfigError(AfterCommitFailed, ConfigError):
    """``AfterCommitFailed`` when every failed push was refused as misconfigured (a Redis URL
    that no retry helps, say)."""


#: A push's own error -> what the failures raise when all were of that kind.
_KINDS: tuple[tuple[type[Exception], type[AfterCommitFailed]], ...] = (
    (RedisUnavailable, AfterCommitRedisUnavailable), (ConfigError, AfterCommitConfigError))


def _failure_message(failed: list[FailedPush], total: int) -> str:
    pushes = "the push deferred" if total == 1 else f"{len(failed)} of the {total} pushes deferred"
    jobs = "; ".join(str(push) for push in failed[:_SHOWN_JOBS])
    if len(failed) > _SHOWN_JOBS:
        jobs += f"; and {len(failed) - _SHOWN_JOBS} more"
    # Its first clause only: the rest is a lone push's advice (retry it, or fail the
    # request), wrong once the transaction has committed.
    first = str(failed[0].error).split("; ", 1)[0][:_SHOWN_ERROR]
    return (f"the transaction HAS committed, but {pushes} to it with after_commit failed: "
            f"{jobs} (first error: {first}). Do not retry the transaction: its rows are "
            "written, and a retry would write them again. Catch AfterCommitFailed and push "
            "each of its .failed again once the cause is fixed (failed.push_again()), or "
            "record them to push later")


def _push_name(push: Callable[..., Any]) -> str:
    """``app.jobs.SendWelcome.perform_async`` for a job's method (perform_bulk and the
    async ones too), else the callable's name."""
    cls = _owner_class(push)
    name = getattr(push, "__name__", None)
    if cls is not None and name is not None:
        return f"{cls.wire_name()}.{name}"
    return getattr(push, "__qualname__", None) or repr(push)


def _job_class(push: Callable[..., Any]) -> type[Job] | None:
    """The job class whose enqueue method ``push`` is: a Job class's, an ``@job`` function's,
    or a ``.set(...)``'s. None for anything else (a lambda, a function of the app's own)."""
    if getattr(push, "__name__", None) not in _PUSHES:
        return None
    return _owner_class(push)


def _owner_class(push: Callable[..., Any]) -> type[Job] | None:
    """The job class a bound method ``push`` belongs to, if any."""
    owner = getattr(push, "__self__", None)
    if isinstance(owner, type) and issubclass(owner, Job):
        return owner
    if isinstance(owner, JobFunction):
        return owner.job_class
    if isinstance(owner, _Setter):
        return owner._cls
    return None


def _check_push(push: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse now, before the commit, a push that would fail at it for its own sake (arguments
    perform cannot take, a class no worker can import): raised at the commit, it would come
    after the rows were written, with the other pushes not made."""
    cls = _job_class(push)
    if cls is None:
        return  # nothing known to check against: it runs at the commit, as given
    try:
        bound = inspect.signature(push).bind(*args, **kwargs)
    except TypeError as exc:  # perform_in without its interval, say
        raise TypeError(f"after_commit(session, {_push_name(push)}, ...): {exc}; pass the"
                        " push's own arguments after it, as you would call it") from None
    job_args: tuple[Any, ...] = ()
    job_kwargs: dict[str, Any] = {}
    for parameter in bound.signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            job_args = bound.arguments.get(parameter.name, ())
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            job_kwargs = bound.arguments.get(parameter.name, {})
    check_call(cls, job_args, job_kwargs)
    check_args(list(job_args))  # a date or an ORM object: refused now, not after the commit
    if job_kwargs:
        check_args(job_kwargs, KWARGS)
    check_runnable(cls)


def _defer(session: Session, call: tuple[Callable[..., Any], Any, Any]) -> None:
    # Listeners stay for the session's life (SQLAlchemy forbids removing one while its
    # event runs); each commit, rollback or close empties the list.
    if not event.contains(session, "after_commit", _run):
        event.listen(session, "after_commit", _run)
        event.listen(session, "after_soft_rollback", _forget)
        event.listen(session, "after_transaction_end", _ended)
    # The innermost savepoint, else the transaction.
    within = session.get_nested_transaction() or session.get_transaction() or _begin(session)
    session.info.setdefault(_PENDING, []).append((within, *call))


def _begin(session: Session) -> SessionTransaction:
    """Begin the transaction the push waits for, as the session's next use would (autobegin).
    Without one, a rollback() or close() before that use fires no event: the push stayed,
    and went out at the commit of a later, unrelated transaction."""
    if not session.autobegin:
        raise InvalidRequestError(
            "after_commit needs a transaction to wait for, and this Session has none and "
            "autobegin=False: call session.begin() first, then after_commit inside it")
    return session.begin()


def _run(session: Session) -> None:
    """Make every push deferred to the commit, each whatever the others did: one failing
    must not lose the rest. The failures are raised together when the transaction ends."""
    if session.in_nested_transaction():
        return  # a savepoint released (SQLAlchemy 2.1 fires after_commit for it): not yet
    pending = session.info.pop(_PENDING, [])
    failed = []
    for _, push, args, kwargs in pending:
        try:
            push(*args, **kwargs)
        except Exception as exc:
            failed.append(FailedPush(push, args, kwargs, exc))
    if failed:
        # Raised here, it would leave the session stuck in its committed transaction
        # (unusable, its connection held): _ended raises it once the session has closed it.
        session.info[_FAILED] = (session.get_transaction(), _failure(failed, len(pending)))


def _failure(failed: list[FailedPush], total: int) -> AfterCommitFailed:
    """The error for these failures, of the kind all of them were (RedisUnavailable, say), so
    that an ``except`` for that kind, written for a push made at once, still catches it."""
    kind = next((ours for theirs, ours in _KINDS
                 if all(isinstance(push.error, theirs) for push in failed)), AfterCommitFailed)
    error = kind(failed, total)
    error.__cause__ = failed[0].error
    return error


def _ended(session: Session, transaction: SessionTransaction) -> None:
    """The whole transaction ended: after its commit (whose pushes _run has made already), a
    rollback, or a close(), which fires no rollback event."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        committed, error = session.info.pop(_FAILED, (None, None))
        if error is not None and committed is transaction:
            raise error


def _forget(session: Session, previous: SessionTransaction) -> None:
    """A rollback ended ``previous``: drop the pushes made inside what it undid. after_rollback
    would not do: it fires for a savepoint's rollback too, with no word of which one."""
    # A flush runs in a subtransaction of its own, neither a savepoint nor the whole. When
    # it fails, this fires once, for it, and what it undoes reaches up to the innermost
    # savepoint around it (get-or-create's IntegrityError), or else the whole transaction.
    undone = previous
    while undone.parent is not None and not undone.nested:
        undone = undone.parent
    if undone.parent is None:  # the whole transaction
        session.info.pop(_PENDING, None)
        return
    pending = session.info.get(_PENDING, [])
    pending[:] = [entry for entry in pending if not _inside(entry[0], undone)]


def _inside(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False
