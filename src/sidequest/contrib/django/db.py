"""Django's database connections around jobs, and pushes deferred to the commit.

Django checks its connections around every request (``close_old_connections`` on
``request_started`` and ``request_finished``): a connection past ``CONN_MAX_AGE``, or one
that failed, is closed and the next query opens a fresh one. A worker thread runs job after
job with no request, so the same is done around each job, in the thread that runs it; a job
after a database restart then gets a new connection instead of the dead one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections, transaction

#: ``close_old_connections`` in the thread Django's async ORM calls run in.
_check_async = sync_to_async(close_old_connections, thread_sensitive=True)


class CheckConnections:
    """Server middleware: ``close_old_connections`` before and after each job, in its
    thread (for an ``async def`` job, in the thread Django's async ORM calls use)."""

    def __call__(self, job: Any, payload: dict[str, Any], queue: str,
                 call_next: Callable[[], Any]) -> Any:
        close_old_connections()
        try:
            return call_next()
        finally:
            close_old_connections()

    async def acall(self, job: Any, payload: dict[str, Any], queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        await _check_async()
        try:
            return await call_next()
        finally:
            await _check_async()


check_connections = CheckConnections()


def on_commit(push: Callable[[], object]) -> None:
    """``enqueue_on_commit``: push when the default database's transaction commits (at once
    outside a transaction); a rollback forgets the push."""
    transaction.on_commit(push)
