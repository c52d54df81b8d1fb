"""The ``Job`` base class and the ``@job`` decorator: what users write and enqueue.

Options are class attributes, checked when the class is defined so that a typo fails at
import, not at 3 a.m. in a worker. Each job class is registered under its wire name.
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar, overload

from sidequest import client, expiry, registry, unique
from sidequest.errors import ConfigError
from sidequest.payload import Payload

#: Names Sidekiq's web UI can show a page for; others would be invisible there.
QUEUE_NAME = re.compile(r"[A-Za-z0-9_:.\-]+")
OPTIONS = ("queue", "retry", "backtrace", "dead", "retry_queue", "tags", "unique_for",
           "unique_until", "expires_in", "name")
#: Per-push options accepted by ``set(...)`` on top of the class options.
PUSH_OPTIONS = (*OPTIONS[:-1], "jid")
_NOT_OPTIONS = {"jid", "jobs"}
#: Spellings that users of Celery, RQ or Sidekiq reach for, and what Sidequest calls them.
_ALIASES = {
    "retries": "retry",
    "max_retries": "retry",
    "queue_name": "queue",
    "sidekiq_options": "one class attribute per option",
    "dead_letter": "dead",
    "tag": "tags",
}


def validate_options(options: Mapping[str, Any], where: str, allowed: Iterable[str]) -> None:
    """Raise ConfigError for an unknown option or a value of the wrong type."""
    allowed = tuple(allowed)
    for key, value in options.items():
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; known options: {allowed}"
            raise ConfigError(f"{where}: unknown option {key!r}{extra}")
        _check_option(key, value, where)


def _check_option(key: str, value: Any, where: str) -> None:
    ok: bool
    if key in ("queue", "retry_queue"):
        ok = (value is None and key == "retry_queue") or (
            isinstance(value, str) and bool(QUEUE_NAME.fullmatch(value))
        )
        expect = "a queue name of letters, digits and _ : . -"
    elif key in ("retry", "backtrace"):
        ok = isinstance(value, bool) or (isinstance(value, int) and value >= 0)
        expect = "True, False or a non-negative int"
    elif key == "dead":
        ok, expect = isinstance(value, bool), "True or False"
    elif key == "tags":
        ok = isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value)
        expect = "a list of strings"
    elif key in unique.OPTIONS:
        ok, expect = unique.check_option(key, value)
    elif key == "expires_in":
        ok, expect = expiry.check_option(value)
    elif key == "jid":
        ok = isinstance(value, str) and bool(value)
        expect = "a non-empty string"
    else:  # name
        ok, expect = value is None or (isinstance(value, str) and bool(value)), "a non-empty string"
    if not ok:
        raise ConfigError(f"{where}: option {key}={value!r} is invalid; expected {expect}")


def to_epoch(when: float | datetime | timedelta, relative: bool) -> float:
    if isinstance(when, timedelta):
        return when.total_seconds()
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.astimezone()  # naive datetimes are local time, as datetime.timestamp()
        return when.astimezone(timezone.utc).timestamp()
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
        kind = "an interval in seconds or a timedelta" if relative else "a datetime or epoch"
        raise TypeError(f"expected {kind}, got {when!r}")
    return float(when)


class _Pusher:
    """Shared enqueue methods of a job class and of ``Job.set(...)``."""

    def _base(self) -> Payload:
        raise NotImplementedError

    def _job_class(self) -> type[Job]:
        raise NotImplementedError

    def perform_async(self, *args: Any, **kwargs: Any) -> str | None:
        """Enqueue now; returns the jid, or None when the push was dropped (a duplicate of a
        unique job, or a client middleware said no)."""
        return self._at(None, args, kwargs)

    def perform_in(self, interval: float | timedelta, *args: Any, **kwargs: Any) -> str | None:
        return self._at(client.schedule_time(to_epoch(interval, relative=True)), args, kwargs)

    def perform_at(self, when: float | datetime, *args: Any, **kwargs: Any) -> str | None:
        return self._at(client.schedule_time(to_epoch(when, relative=False)), args, kwargs)

    def _at(self, at: float | None, args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> str | None:
        check_call(self._job_class(), args, kwargs)
        item = {**self._base(), "args": list(args)}
        if kwargs:  # only then: a positional job's payload stays what Sidekiq writes
            item[KWARGS] = kwargs
        if at is not None:
            item["at"] = at
        return client.push(self._stamp(item))

    def _stamp(self, item: Payload) -> Payload:
        """Turn the unique and expiry options into their payload keys."""
        hook = getattr(self._job_class(), "unique_key", None)
        return expiry.stamp(unique.stamp(item, hook))

    def perform_bulk(
        self, args_list: Iterable[list[Any]], batch_size: int = client.BULK_BATCH
    ) -> list[str | None]:
        """Enqueue one job per argument list, one round trip per ``batch_size`` jobs; a unique
        job's duplicates (in Redis or earlier in the list) get None."""
        items = [self._stamp(item) for item in client.bulk_items(self._base(), args_list)]
        return client.push_many(items, batch_size)


class _Setter(_Pusher):
    def __init__(self, cls: type[Job], options: dict[str, Any]) -> None:
        self._cls, self._options = cls, options

    def _job_class(self) -> type[Job]:
        return self._cls

    def _base(self) -> Payload:
        check_runnable(self._cls)
        base = self._cls.payload_base()
        base.update(self._options)
        if "tags" in base:
            base["tags"] = list(base["tags"])
        return base


#: ``sidequest.testing`` puts itself here when imported, so that the class-level helpers
#: below reach it without this module importing it (``import sidequest`` stays lean).
_testing: Any = None


def install_testing(module: Any) -> None:
    global _testing
    _testing = module


def _fake_mode() -> Any:
    if _testing is None:
        raise RuntimeError(
            "Job.jobs, .drain(), .perform_one() and .clear() work in fake mode: call"
            " sidequest.testing.fake() first (see the README's 'Testing your jobs')"
        )
    return _testing


class _JobMeta(_Pusher, type):
    """Lets the enqueue methods be called on the class: ``SendWelcome.perform_async(42)``."""

    def _base(cls) -> Payload:
        check_runnable(cls)
        return cls.payload_base()  # type: ignore[attr-defined,no-any-return]

    def _job_class(cls) -> type[Job]:
        return cls  # type: ignore[return-value]

    @property
    def jobs(cls) -> list[Payload]:
        """Fake mode: this class's queued payloads, the live list (``.jobs.clear()`` works)."""
        return _fake_mode().jobs_for(cls)  # type: ignore[no-any-return]

    def drain(cls) -> int:
        """Fake mode: run this class's queued jobs here; a job's exception is raised."""
        return int(_fake_mode().drain(cls))

    def perform_one(cls) -> Payload:
        """Fake mode: run the oldest queued job of this class."""
        return dict(_fake_mode().perform_one(cls))

    def clear(cls) -> None:
        """Fake mode: forget this class's queued jobs."""
        _fake_mode().clear(cls)


class Job(metaclass=_JobMeta):
    """Subclass this and define ``perform``; set options as class attributes.

    ``retry_in(count, exc, payload)`` may return seconds to wait, "kill" or "discard";
    ``retries_exhausted(payload, exc)`` runs once when the last retry failed.
    """

    queue: ClassVar[str] = "default"
    retry: ClassVar[bool | int] = True
    backtrace: ClassVar[bool | int] = False
    dead: ClassVar[bool] = True
    retry_queue: ClassVar[str | None] = None
    tags: ClassVar[list[str] | tuple[str, ...]] = ()
    name: ClassVar[str | None] = None
    #: Seconds a duplicate (same class, queue and args, or ``unique_key(*args)``) is dropped.
    unique_for: ClassVar[float | None] = None
    unique_until: ClassVar[str] = "success"
    #: Seconds after its push (or its run time) by which the job must start, or be dropped.
    expires_in: ClassVar[float | None] = None

    jid: str = ""
    payload: Payload

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        where = f"job class {cls.__module__}.{cls.__qualname__}"
        own = {k: v for k, v in vars(cls).items() if k in OPTIONS}
        validate_options(own, where, OPTIONS)
        _check_typos(cls, where)
        if "perform" in vars(cls) or any("perform" in vars(b) for b in cls.__mro__[1:-2]):
            registry.register(cls)

    def perform(self, *args: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define perform()")

    @classmethod
    def wire_name(cls) -> str:
        # Only a name set on this very class counts: a subclass is a different job.
        return vars(cls).get("name") or f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def payload_base(cls) -> Payload:
        base: Payload = {"class": cls.wire_name(), "queue": cls.queue, "retry": cls.retry}
        if cls.backtrace is not False:
            base["backtrace"] = cls.backtrace
        if cls.dead is not True:
            base["dead"] = cls.dead
        if cls.retry_queue:
            base["retry_queue"] = cls.retry_queue
        if cls.tags:
            base["tags"] = list(cls.tags)
        if cls.unique_for is not None:
            base["unique_for"] = cls.unique_for
            base["unique_until"] = cls.unique_until
        if cls.expires_in is not None:
            base["expires_in"] = cls.expires_in
        return base

    @classmethod
    def set(cls, **options: Any) -> _Setter:
        """Per-push options: ``SendWelcome.set(queue="critical").perform_async(42)``."""
        validate_options(options, f"{cls.wire_name()}.set()", PUSH_OPTIONS)
        return _Setter(cls, options)

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: Payload) -> float | str | None:
        return None

    @classmethod
    def retries_exhausted(cls, payload: Payload, exc: BaseException) -> None:
        return None


P = ParamSpec("P")
R = TypeVar("R")

#: The top-level payload key of keyword arguments. Ruby Sidekiq ignores keys it does not
#: know; a Ruby-pushed job has none and runs with its positional ``args`` only.
KWARGS = "kwargs"
_signatures: dict[type, inspect.Signature | None] = {}


def _with_self(fn: Callable[..., Any]) -> inspect.Signature | None:
    """``fn``'s signature with a leading ``self``, as a method's: what a push is checked on."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[this, *signature.parameters.values()])


def check_call(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a push whose arguments ``perform`` cannot take, naming the job and the signature,
    now rather than as a TypeError in the worker (retried for weeks)."""
    if cls not in _signatures:
        try:
            _signatures[cls] = inspect.signature(cls.perform)  # type: ignore[attr-defined]
        except (TypeError, ValueError):  # a C function or odd callable: nothing to check
            _signatures[cls] = None
    signature = _signatures[cls]
    if signature is None:
        return
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        plain = [p.replace(annotation=inspect.Parameter.empty)
                 for p in list(signature.parameters.values())[1:]]
        shown = inspect.Signature(plain)
        name = vars(cls).get("name") or f"{cls.__module__}.{cls.__qualname__}"
        raise TypeError(f"{name}.perform{shown} cannot take these arguments: {exc}") from None


_runnable: set[type] = set()


def check_runnable(cls: type) -> None:
    """Refuse a real push of a job no worker could import by its name: defined inside a
    function, in ``__main__``, or in a module imported under a name that depends on the
    working directory. Without this it would fail only in the worker, and retry for weeks.
    An explicit ``name`` (shared with Ruby, or mapped by hand) and the testing modes, which
    run jobs in this process, are exempt."""
    if cls in _runnable or client.pushes_are_local() or vars(cls).get("name"):
        return
    module, qualname = cls.__module__, cls.__qualname__
    problem = None
    if "<locals>" in qualname:
        problem = (f"{module}.{qualname} is defined inside a function, so a worker cannot "
                   "import it: define it at the top level of a module")
    elif module == "__main__":
        problem = (f"{qualname} is defined in the script being run (__main__), which a worker "
                   "cannot import: move it into a module (e.g. app/jobs.py) and import it")
    else:
        problem = _directory_dependent(module, qualname)
    if problem:
        raise ConfigError(f"{problem}; or give the class an explicit name = '...' that the "
                          "worker's classes share")
    _runnable.add(cls)


def _directory_dependent(module: str, qualname: str) -> str | None:
    """A top-level module name for a file inside a package (``jobs`` for app/jobs.py, after
    ``cd app``): a worker started from the project root knows it as ``app.jobs``."""
    if "." in module:
        return None
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file or not (Path(file).parent / "__init__.py").is_file():
        return None
    package = Path(file).parent.name
    return (f"{module}.{qualname} was imported as {module!r} from inside the package "
            f"{package!r} (the working directory decides that name), while a worker run from "
            f"the project root knows it as '{package}.{module}': import it as "
            f"{package}.{module} and run from the project root")


def _check_typos(cls: type, where: str) -> None:
    """Catch ``retries = 3`` and friends: a plain attribute that looks like a misspelt option."""
    for key, value in vars(cls).items():
        if key.startswith("_") or key in OPTIONS or key in _NOT_OPTIONS or callable(value):
            continue
        if isinstance(value, (classmethod, staticmethod, property)):
            continue
        close = difflib.get_close_matches(key, OPTIONS, 1, 0.8)
        hint = _ALIASES.get(key) or (close[0] if close else None)
        if hint:
            raise ConfigError(f"{where}: unknown option {key!r}; did you mean {hint!r}?")


class JobFunction(Generic[P, R]):
    """What ``@job`` returns: call it to run the function now, or enqueue it like a Job class.

    Generic over the function's parameters, so that type checkers check ``perform_async``,
    ``perform_in`` and ``perform_at`` calls against the function's own signature.
    """

    def __init__(self, func: Callable[P, R], job_class: type[Job]) -> None:
        self.func = func
        self.job_class = job_class
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", "job")
        self.__wrapped__ = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def perform_async(self, *args: P.args, **kwargs: P.kwargs) -> str | None:
        return self.job_class.perform_async(*args, **kwargs)

    def perform_in(self, interval: float | timedelta, *args: P.args,
                   **kwargs: P.kwargs) -> str | None:
        return self.job_class.perform_in(interval, *args, **kwargs)

    def perform_at(self, when: float | datetime, *args: P.args,
                   **kwargs: P.kwargs) -> str | None:
        return self.job_class.perform_at(when, *args, **kwargs)

    def perform_bulk(
        self, args_list: Iterable[list[Any]], batch_size: int = 1000
    ) -> list[str | None]:
        return self.job_class.perform_bulk(args_list, batch_size)

    def set(self, **options: Any) -> _Setter:
        return self.job_class.set(**options)

    def __getattr__(self, item: str) -> Any:
        # Testing helpers (jobs, drain, perform_one, clear) live on the class.
        return getattr(self.job_class, item)


@overload
def job(func: Callable[P, R], /) -> JobFunction[P, R]: ...
@overload
def job(func: None = None, /, **options: Any) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...
def job(
    func: Callable[P, R] | None = None, /, **options: Any
) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
    """Turn a function into a job: ``@job`` or ``@job(queue="low", retry=3)``."""

    def wrap(fn: Callable[P, R]) -> JobFunction[P, R]:
        where = f"@job on {fn.__module__}.{fn.__qualname__}"
        validate_options(options, where, OPTIONS)

        def perform(self: Job, *args: Any, **kwargs: Any) -> None:
            fn(*args, **kwargs)

        perform.__signature__ = _with_self(fn)  # type: ignore[attr-defined]

        attrs: dict[str, Any] = {
            "perform": perform,
            "__module__": fn.__module__,
            "__qualname__": fn.__qualname__,
            "__doc__": fn.__doc__,
            **options,
        }
        return JobFunction(fn, _JobMeta(fn.__name__, (Job,), attrs))  # type: ignore[arg-type]

    return wrap(func) if func is not None else wrap
