"""Around-middleware chains, for the client (push) and the server (perform).

A client middleware is ``f(payload, queue, call_next) -> payload | None``: it may change the
payload, and returning None (not calling ``call_next``) cancels the push.
A server middleware is ``f(job, payload, queue, call_next) -> None``: it runs around
``perform``; exceptions pass through it like any other code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Chain(Generic[F]):
    """An ordered list of middleware callables; the first added is the outermost."""

    def __init__(self) -> None:
        self._entries: list[F] = []

    def add(self, middleware: F) -> F:
        """Append ``middleware`` (also usable as a decorator)."""
        _check(middleware)
        if middleware not in self._entries:
            self._entries.append(middleware)
        return middleware

    def prepend(self, middleware: F) -> F:
        _check(middleware)
        self.remove(middleware)
        self._entries.insert(0, middleware)
        return middleware

    def remove(self, middleware: F) -> None:
        if middleware in self._entries:
            self._entries.remove(middleware)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Any:
        return iter(list(self._entries))

    def needs_loop(self) -> bool:
        """Some entry has only the ``acall`` form: the chain can run on the event loop alone
        (``invoke`` cannot call it)."""
        return any(not callable(entry) for entry in self._entries)

    def is_async(self) -> bool:
        """Every entry has the ``acall`` form: ``ainvoke`` can run the chain on a loop."""
        return all(hasattr(entry, "acall") for entry in self._entries)

    async def ainvoke(self, args: tuple[Any, ...], final: Callable[[], Awaitable[Any]]) -> Any:
        """Await each middleware's ``acall(*args, call_next)``; the innermost is ``final``."""
        entries: list[Any] = list(self._entries)  # each with an acall (is_async)

        async def step(index: int) -> Any:
            if index == len(entries):
                return await final()
            return await entries[index].acall(*args, lambda: step(index + 1))

        return await step(0)

    def invoke(self, args: tuple[Any, ...], final: Callable[[], Any]) -> Any:
        """Call each middleware with ``*args, call_next``; the innermost next is ``final``."""
        entries = self._entries
        if not entries:
            return final()
        # Built from the inside out, each next a partial (made in C): no Python frame per
        # level besides the middleware's own, on a path every job takes.
        call_next = final
        for entry in reversed(entries):
            if not callable(entry):  # only an acall: an all-async application's
                raise TypeError(f"the middleware {entry!r} has only an async acall, and this job"
                                f" runs on a thread: give its class a __call__ method too")
            call_next = partial(entry, *args, call_next)
        return call_next()


def _check(middleware: object) -> None:
    """Refused when added, not at every job: an object that is neither callable nor has an
    ``acall`` (a class with ``call``, say) failed each job with "the first argument must be
    callable". One with ``acall`` alone serves an application whose jobs are all async."""
    if not callable(middleware) and not callable(getattr(middleware, "acall", None)):
        raise TypeError(f"a middleware is called as f(..., call_next): {middleware!r} cannot be"
                        f" called; give its class a __call__ method (and an async acall for"
                        f" async jobs), or add a function")


ClientMiddleware = Callable[[dict[str, Any], str, Callable[[], Any]], Any]
ServerMiddleware = Callable[[Any, dict[str, Any], str, Callable[[], Any]], Any]

#: Runs around every push from this process (perform_async, perform_in, perform_bulk, set).
client: Chain[ClientMiddleware] = Chain()
#: Runs around every perform in a worker of this process. The testing modes run their own
#: chain, ``sidequest.testing.server_middleware``.
server: Chain[ServerMiddleware] = Chain()
