"""``session_per_job``: a fresh SQLAlchemy session for every job, removed in the job's own
thread (or, for an ``async_scoped_session``, its own task) when it ends; imported from
``sidequest.contrib.sqlalchemy``, whose docstring shows its use."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import scoped_session
from sqlalchemy.util import ThreadLocalRegistry

from sidequest import middleware

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_scoped_session

log = logging.getLogger("sidequest")


class SessionPerJob:
    """The server middleware of ``session_per_job``: ``scoped``'s session is removed after
    each job (rolling back what the job left uncommitted)."""

    def __init__(self, scoped: scoped_session[Any] | async_scoped_session[Any]) -> None:
        self.scoped = scoped
        #: An async_scoped_session: its remove() is a coroutine, its sessions AsyncSessions.
        self.is_async = inspect.iscoroutinefunction(scoped.remove)
        #: Scope (what the registry keys its sessions by) -> async jobs running in it. Only
        #: the event loop's thread touches it.
        self._running: dict[Hashable, int] = {}
        self._warned_shared = False
        self._warned_thread = False

    def __call__(self, job: Any, payload: dict[str, Any], queue: str,
                 call_next: Callable[[], Any]) -> Any:
        if getattr(job, "async_perform", False):
            self._warn_thread_path()
        try:
            return call_next()
        finally:
            # An async_scoped_session has nothing in a worker thread's scope (its scopefunc,
            # asyncio.current_task, even raises there), and its remove() must be awaited.
            if not self.is_async:
                self.scoped.remove()

    async def acall(self, job: Any, payload: dict[str, Any], queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        # The job's coroutine runs in this task (its time limit too), so the scope here is
        # the job's own.
        scope = self._scope()
        self._running[scope] = self._running.get(scope, 0) + 1
        try:
            return await call_next()
        finally:
            await self._leave(scope)

    def _scope(self) -> Hashable:
        registry = self.scoped.registry
        if isinstance(registry, ThreadLocalRegistry):
            return threading.get_ident()  # the loop's thread: every async job's scope
        return registry.scopefunc()  # type: ignore[no-any-return]

    async def _leave(self, scope: Hashable) -> None:
        """One async job of ``scope`` ended: remove its session if it was the last one in it;
        one still running may be in the middle of using it."""
        others = self._running[scope] - 1
        thread_local = isinstance(self.scoped.registry, ThreadLocalRegistry)
        if (others or thread_local) and self.scoped.registry.has():
            self._warn_shared()
        if others:
            self._running[scope] = others
            return
        del self._running[scope]
        if self.is_async:
            await self.scoped.remove()  # type: ignore[misc]
        else:
            self.scoped.remove()  # blocks the loop as the jobs' own sync queries did

    def _warn_shared(self) -> None:
        if self._warned_shared:
            return
        self._warned_shared = True
        log.warning(
            "session_per_job: async jobs running at the same time share one session (a "
            "thread-local scoped_session has one for the event loop's thread, where every "
            "async job runs), so one job's commit also commits what the others have added "
            "so far; it is removed only when none is running, which a steady stream of jobs "
            "may never allow. For a session per async job, "
            "pass session_per_job an async_scoped_session(async_sessionmaker(engine), "
            "scopefunc=asyncio.current_task) and use that in async jobs")

    def _warn_thread_path(self) -> None:
        if self._warned_thread:
            return
        self._warned_thread = True
        log.warning(
            "session_per_job cannot remove the session an async job used when a worker "
            "thread runs the job's middleware: the job itself ran on the event loop, out of "
            "that thread's reach. This happens when a server middleware has no acall "
            "coroutine form (a warning names it): give it one, so that async jobs run inside "
            "this middleware's acall")


def session_per_job(scoped: scoped_session[Any] | async_scoped_session[Any]) -> SessionPerJob:
    """Add a server middleware that removes ``scoped``'s session after every job (rolling
    back what the job left uncommitted); returns it, so that a test can remove it.

    ``scoped`` is a ``scoped_session`` (thread-local: one session per worker thread, and one
    shared by the async jobs on the event loop's thread) or an ``async_scoped_session``
    with ``scopefunc=asyncio.current_task`` (a session per async job)."""
    remove_after = SessionPerJob(scoped)
    middleware.server.add(remove_after)
    return remove_after
