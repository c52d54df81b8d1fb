"""``Job.set(...)`` and the push behind every enqueue method of a job class: the options of
one push over the class's, the argument checks, a unique job's identity, then
``client.push``. Kept apart from job.py, which is what users subclass and decorate."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from sidequest import client, unique
from sidequest.options import to_epoch, warn_of_idle_options
from sidequest.payload import KWARGS, Payload
from sidequest.pushcheck import check_runnable
from sidequest.signatures import check_bulk, check_bulk_lists, check_call

if TYPE_CHECKING:
    from sidequest.job import Job

P = ParamSpec("P")
R = TypeVar("R")



def _push(cls: type[Job], base: Payload, at: float | None, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> str | None:
    check_call(cls, args, kwargs)
    item = {**base, "args": list(args)}
    if kwargs:  # only then: a positional job's payload stays what Sidekiq writes
        item[KWARGS] = kwargs
    if at is not None:
        item["at"] = at
    unique_identity(cls, item, args, kwargs)
    return client.push(item)


def unique_identity(cls: type[Job], item: Payload, args: Any, kwargs: dict[str, Any]) -> None:
    """A unique job whose class has a ``unique_key`` hook is identified by what it returns."""
    hook = getattr(cls, "unique_key", None)
    if item.get(unique.FOR) and hook is not None:
        where = f"{cls.wire_name()}.unique_key"
        try:
            key = hook(*args, **kwargs)
        except TypeError as exc:  # often a plain method: self takes the first argument
            bound = isinstance(inspect.getattr_static(cls, "unique_key", None),
                               (staticmethod, classmethod))
            advice = "" if bound else ", without self: make it a @staticmethod"
            raise TypeError(f"{where}: {exc} (it takes perform's arguments{advice})") from exc
        try:
            unique.stamp(item, key=key)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{where} returned {key!r}, which is not JSON: return str, int,"
                            f" float, bool, None, or lists and dicts of them ({exc})") from None


class _Setter(Generic[P]):
    """``Job.set(...)``: the enqueue methods, with per-push options over the class's."""

    def __init__(self, cls: type[Job], options: dict[str, Any]) -> None:
        self._cls, self._options = cls, options

    def _base(self) -> Payload:
        check_runnable(self._cls)
        base = self._cls.payload_base()
        base.update(self._options)
        if "tags" in base:
            base["tags"] = list(base["tags"])
        warn_of_idle_options(base)
        return base

    def perform_async(self, /, *args: P.args, **kwargs: P.kwargs) -> str | None:
        return _push(self._cls, self._base(), None, args, kwargs)

    def perform_in(self, interval: float | timedelta, /, *args: P.args,
                   **kwargs: P.kwargs) -> str | None:
        at = client.schedule_time(to_epoch(interval, relative=True))
        return _push(self._cls, self._base(), at, args, kwargs)

    def perform_at(self, when: float | datetime, /, *args: P.args,
                   **kwargs: P.kwargs) -> str | None:
        at = client.schedule_time(to_epoch(when, relative=False))
        return _push(self._cls, self._base(), at, args, kwargs)

    def perform_bulk(
        self, args_list: Iterable[list[Any]], batch_size: int = client.BULK_BATCH
    ) -> list[str | None]:
        """Enqueue one job per argument list, one round trip per ``batch_size`` jobs.
        Positional arguments only, as in Sidekiq: each item is one job's ``args``."""
        check_bulk_lists(args_list)
        items = client.bulk_items(self._base(), args_list)
        check_bulk(self._cls, (item["args"] for item in items))
        for item in items:
            unique_identity(self._cls, item, item["args"], {})
        return client.push_many(items, batch_size, uniform=True)

    # From async code, as the class's own: the same pushes, off the event loop.
    async def aperform_async(self, /, *args: P.args, **kwargs: P.kwargs) -> str | None:
        return await _off_loop(lambda: self.perform_async(*args, **kwargs))

    async def aperform_in(self, interval: float | timedelta, /, *args: P.args,
                          **kwargs: P.kwargs) -> str | None:
        return await _off_loop(lambda: self.perform_in(interval, *args, **kwargs))

    async def aperform_at(self, when: float | datetime, /, *args: P.args,
                          **kwargs: P.kwargs) -> str | None:
        return await _off_loop(lambda: self.perform_at(when, *args, **kwargs))

    async def aperform_bulk(self, args_list: Iterable[list[Any]],
                            batch_size: int = client.BULK_BATCH) -> list[str | None]:
        return await _off_loop(lambda: self.perform_bulk(args_list, batch_size))


async def _off_loop(push: Callable[[], R]) -> R:
    import asyncio  # noqa: PLC0415 - only async callers pay for it

    return await asyncio.to_thread(push)
