"""``enqueue_on_commit``: pushes that wait for the database transaction around them.

A job class (or one ``.set(...)``) with ``enqueue_on_commit = True`` hands its push to the
transaction integration installed here (``sidequest.contrib.django`` installs Django's
``transaction.on_commit``): inside a transaction the job is written when it commits and
never if it rolls back, so a worker never gets a job for a row it cannot see yet; outside one
it is written at once. Sidequest's core knows no database, so without an integration such a
push is refused with a message saying what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sidequest.errors import ConfigError
from sidequest.payload import Payload

OPTION = "enqueue_on_commit"

#: ``defer(push)``: call ``push()`` when the current transaction commits (at once outside
#: one), forget it on rollback. Set by the integration, e.g. Django's ``transaction.on_commit``.
Defer = Callable[[Callable[[], object]], None]
_defer: Defer | None = None
#: ``waits()``: whether a push deferred now would wait for a commit (a transaction is open
#: in this thread). Set with the integration; without it, any push is taken to wait.
_waits: Callable[[], bool] | None = None


@dataclass
class Deferred:
    """A push waiting for the commit: called, it writes its jobs; ``jobs`` names them (class,
    jid), for an integration's error when the write fails after the commit. ``result`` is
    what the push returned, once it ran (at once, outside a transaction)."""

    push: Callable[[], object]
    jobs: list[tuple[str, str]]
    result: object = None
    ran: bool = False

    def __call__(self) -> object:
        self.result = self.push()
        self.ran = True
        return self.result


def install(defer: Defer | None, waits: Callable[[], bool] | None = None) -> Defer | None:
    """Set the function that defers a push to the commit, and the one that says whether a
    push would wait now; returns the previous ``defer``."""
    global _defer, _waits
    previous, _defer, _waits = _defer, defer, waits
    return previous


def would_wait() -> bool:
    """Whether a push deferred now would wait for a commit rather than be written at once."""
    return _defer is not None and (_waits is None or _waits())


def wanted(items: Sequence[Payload]) -> bool:
    """Whether these pushes wait for the commit; takes the option out of the payloads (it is
    not part of what is written to Redis)."""
    flags = [bool(item.pop(OPTION, False)) for item in items]
    return any(flags)


def defer(push: Callable[[], object]) -> None:
    if _defer is None:
        raise ConfigError(
            "enqueue_on_commit=True needs a database integration to know when the "
            "transaction commits: with Django, add 'sidequest.contrib.django' to "
            "INSTALLED_APPS; with SQLAlchemy (Flask, FastAPI), push through "
            "sidequest.contrib.sqlalchemy.after_commit(session, ...) instead; else push "
            "after your own commit and leave enqueue_on_commit unset")
    _defer(push)
