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
that no job sees another's objects or keeps a connection out of the pool. ``after_commit``
pushes when the session's transaction commits and never if it rolls back, so a worker never
gets a job for a row it cannot see yet, nor for one that was never written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from sqlalchemy import event
    from sqlalchemy.orm import Session, SessionTransaction, scoped_session
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("sidequest.contrib.sqlalchemy needs SQLAlchemy: "
                      "pip install 'sidequest[sqlalchemy]'") from exc

from sidequest import middleware

_PENDING = "sidequest.after_commit"


def session_per_job(scoped: scoped_session[Any]) -> Callable[..., Any]:
    """Add a server middleware that removes ``scoped``'s session after every job (rolling
    back what the job left uncommitted); returns it, so that a test can remove it."""

    def remove_after(job: Any, payload: dict[str, Any], queue: str,
                     call_next: Callable[[], Any]) -> Any:
        try:
            return call_next()
        finally:
            scoped.remove()

    middleware.server.add(remove_after)
    return remove_after


def after_commit(session: Session | scoped_session[Any], push: Callable[..., Any], *args: Any,
                 **kwargs: Any) -> None:
    """Call ``push(*args, **kwargs)`` (a ``perform_async``, ``perform_in``, ...) once the
    session's current transaction commits; forget it if the transaction rolls back. Inside a
    savepoint (``begin_nested``), its rollback forgets the pushes made in it, and only those:
    the ones made before it still happen at the commit. ``session`` may be a
    ``scoped_session`` (Flask-SQLAlchemy's ``db.session``): its current session is used."""
    if not callable(push):
        raise TypeError(f"after_commit needs the push itself and its arguments, e.g."
                        f" after_commit(session, SendWelcome.perform_async, user.id), got"
                        f" {push!r}: the result of a push made already")
    _defer(session() if isinstance(session, scoped_session) else session, (push, args, kwargs))


def _defer(session: Session, call: tuple[Callable[..., Any], Any, Any]) -> None:
    # Listeners stay for the session's life (SQLAlchemy forbids removing one while its
    # event runs); each commit or rollback empties the list.
    if not event.contains(session, "after_commit", _run):
        event.listen(session, "after_commit", _run)
        event.listen(session, "after_soft_rollback", _forget)
    # The innermost savepoint, else the transaction (None: one will begin on first use).
    within = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((within, *call))


def _run(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released (SQLAlchemy 2.1 fires after_commit for it): not yet
    for _, push, args, kwargs in session.info.pop(_PENDING, []):
        push(*args, **kwargs)


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
