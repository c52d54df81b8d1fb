"""Django's database connections around jobs, and pushes deferred to the commit.

Django checks its connections around every request (``close_old_connections`` on
``request_started`` and ``request_finished``): a connection past ``CONN_MAX_AGE``, or one
that failed, is closed and the next query opens a fresh one. A worker thread runs job after
job with no request, so the same is done around each job, in the thread that runs it; a job
after a database restart then gets a new connection instead of the dead one.

A request also clears the query log (``request_started`` -> ``reset_queries``): with
``DEBUG = True`` every connection keeps each query it ran in ``queries_log``, up to 9,000 a
thread. Without the same before each job, a worker's threads would hold thousands of old
queries each, for good (hundreds of MB).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import (
    DEFAULT_DB_ALIAS,
    close_old_connections,
    connections,
    reset_queries,
    transaction,
)

from sidequest import wire
from sidequest.contrib.django import conf
from sidequest.errors import RedisUnavailable


def _job_started() -> None:
    """What ``request_started`` does: the query log emptied, old connections closed."""
    reset_queries()
    close_old_connections()


#: In the thread Django's async ORM calls run in (connections are per thread): an
#: ``async def`` job's queries are logged on that thread's connections.
_started_async = sync_to_async(_job_started, thread_sensitive=True)
_check_async = sync_to_async(close_old_connections, thread_sensitive=True)


class CheckConnections:
    """Server middleware: before each job what Django does before a request (the query log
    emptied, ``close_old_connections``), and ``close_old_connections`` after it, in its
    thread (for an ``async def`` job, in the thread Django's async ORM calls use). The log
    is emptied before, not after, as a request does: code around the job (a middleware, a
    debugging tool) may still read the job's queries once it returns."""

    def __call__(self, job: Any, payload: dict[str, Any], queue: str,
                 call_next: Callable[[], Any]) -> Any:
        _job_started()
        try:
            return call_next()
        finally:
            close_old_connections()

    async def acall(self, job: Any, payload: dict[str, Any], queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        await _started_async()
        try:
            return await call_next()
        finally:
            await _check_async()


check_connections = CheckConnections()


def on_commit(push: Callable[[], object]) -> None:
    """``enqueue_on_commit``: push when the transaction open in this thread commits (at once
    outside one); a rollback forgets the push. With transactions open on several databases,
    the push waits for the default database's, else for the first open one in ``DATABASES``
    order: the one whose commit the job most likely needs, and the one Django's
    ``captureOnCommitCallbacks()`` captures in tests.

    ``robust=False`` (Django's default), so a push that fails at the commit raises to the
    code that left the ``atomic()`` block instead of being only logged (a request would then
    answer success for work that never runs). Django runs none of a transaction's later
    ``on_commit`` callbacks after one raises: so the failing push first tries the other
    pushes still waiting for that commit, and its error names every job not enqueued."""
    # A bad SIDEQUEST: raised at the call, where the transaction can still roll back, not at
    # the commit (where the client middleware would raise it).
    conf.raise_problem()
    alias = _open_transaction()
    if alias is None:
        if not _connected(DEFAULT_DB_ALIAS):
            # No transaction can be open without a connection; asking Django would connect,
            # and a database that is down would fail a push that Redis can take.
            push()
            return
        # At once; under manual transaction management, Django's own error.
        transaction.on_commit(push)
        return
    transaction.on_commit(_Deferred.register(push, alias), using=alias, robust=False)


class _Deferred:
    """One push waiting for the commit of database ``alias``. Each is an ``on_commit``
    callback of its own, so that a savepoint's rollback drops it as Django drops any.

    The connection keeps only weak references to them: a dropped one is gone, so those
    still alive and not run are the ones waiting for this commit."""

    def __init__(self, push: Callable[[], object], alias: str) -> None:
        self.push, self.alias, self.ran = push, alias, False

    @classmethod
    def register(cls, push: Callable[[], object], alias: str) -> _Deferred:
        made = cls(push, alias)
        conn = connections[alias]
        waiting: list[weakref.ref[_Deferred]] = getattr(conn, _WAITING, [])
        if len(waiting) >= max(_PRUNE, 2 * getattr(conn, _PRUNED, 0)):
            # Now and then, not at each push: a transaction may defer thousands.
            waiting = [ref for ref in waiting if _waiting(ref)]
            setattr(conn, _PRUNED, len(waiting))
        waiting.append(weakref.ref(made))
        setattr(conn, _WAITING, waiting)
        return made

    def __call__(self) -> None:
        if self.ran:  # pushed already, with an earlier push that failed
            return
        failed = self._run()
        if failed is None:
            return
        others = [made for ref in getattr(connections[self.alias], _WAITING, [])
                  if _waiting(ref) and (made := ref()) is not None and made.alias == self.alias]
        failures = [failed, *(f for made in others if (f := made._run()) is not None)]
        if not isinstance(failed[1], RedisUnavailable):
            raise failed[1]  # not Redis's state but a bug or a setting: as it is
        raise RedisUnavailable(_committed_message(failures, self.alias)) from failed[1]

    def _run(self) -> tuple[list[tuple[str, str]], Exception] | None:
        """Push; the jobs and the error when they could not be pushed (any error: Django
        runs none of the commit's later callbacks after one raises)."""
        self.ran = True
        try:
            self.push()
        except Exception as exc:
            return _jobs_of(self.push), exc
        return None


#: The attribute of a Django connection that lists its pushes waiting for the commit, and
#: the one that says how many were left at its last pruning.
_WAITING, _PRUNED = "_sidequest_waiting", "_sidequest_pruned"
_PRUNE = 64


def _waiting(ref: weakref.ref[_Deferred]) -> bool:
    made = ref()
    return made is not None and not made.ran


def waits() -> bool:
    """Whether an ``enqueue_on_commit`` push made now waits for a commit (a transaction is
    open in this thread): inside ``with batch.jobs():`` only such a push is refused."""
    return _open_transaction() is not None


def _connected(alias: str) -> bool:
    return any(conn.alias == alias and conn.connection is not None
               for conn in connections.all(initialized_only=True))


def _open_transaction() -> str | None:
    """The database whose commit a push waits for (see on_commit), None outside any."""
    # initialized_only: a database this thread has not touched has no transaction open, and
    # asking would open a connection to it.
    open_ = [conn.alias for conn in connections.all(initialized_only=True)
             if conn.in_atomic_block]
    if DEFAULT_DB_ALIAS in open_:
        return str(DEFAULT_DB_ALIAS)
    return str(open_[0]) if open_ else None


#: The advice of a push that failed before anything was committed; wrong after a commit.
_PUSH_ADVICE = re.compile(r"[;.] the job was not enqueued, so retry later or fail the request$",
                          re.IGNORECASE)


def _committed_message(failures: list[tuple[list[tuple[str, str]], Exception]],
                       alias: str) -> str:
    """The error of the pushes that failed at the commit of database ``alias``: the data is
    committed and the jobs are not in Redis, and what the caller can still do about it."""
    jobs = [job for named, _ in failures for job in named]
    first = failures[0][1]
    what, them = _named(jobs, unnamed=len(failures))
    if any(wire.maybe_sent(exc) for _, exc in failures):
        outcome = f"{what} may not have been enqueued"  # sent, maybe written
        again = f"once Redis answers, look for {them} before pushing {them} again"
    else:
        outcome = f"{what} {'were' if them == 'them' else 'was'} not enqueued"
        again = f"push {them} again once Redis answers"
    return (f"the transaction on database {alias!r} has committed, but {outcome}: "
            f"{_PUSH_ADVICE.sub('', str(first))}. The commit cannot be undone, so failing the "
            f"request would not roll it back: catch sidequest.RedisUnavailable around the "
            f"`with transaction.atomic():` block and {again}, or "
            f"record {them} to push later (a row written inside the transaction, as in the "
            f"outbox pattern, is never lost)")


def _named(jobs: list[tuple[str, str]], unnamed: int = 1) -> tuple[str, str]:
    """The jobs as the error names them (the first three), and the pronoun for them;
    ``unnamed`` is how many pushes there were, for when none names its jobs."""
    if not jobs:
        return ("the job", "it") if unnamed == 1 else (f"{unnamed} pushes' jobs", "them")
    named = ", ".join(f"{name} (jid {jid})" for name, jid in jobs[:3])
    if len(jobs) == 1:
        return f"job {named}", "it"
    more = f" and {len(jobs) - 3} more" if len(jobs) > 3 else ""
    return f"jobs {named}{more}", "them"


def _jobs_of(push: Callable[[], object]) -> list[tuple[str, str]]:
    """The (class, jid) of each job a deferred push writes (``oncommit.Deferred.jobs``), for
    its error to name them; empty for another callable: the error then says "the job"."""
    return list(getattr(push, "jobs", []))
