"""The ``Job`` base class and the ``@job`` decorator: what users write and enqueue.

Options are class attributes, checked when the class is defined so that a typo fails at
import, not at 3 a.m. in a worker. Each job class is registered under its wire name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from sidequest import batch as batch_module
from sidequest import batch_members, client, registry, status
from sidequest.batch import Batch
from sidequest.foreign_calls import FOREIGN_CALLS, ForeignCall
from sidequest.options import DURATIONS, OPTIONS, PUSH_OPTIONS, check_typos, validate_options
from sidequest.payload import Payload
from sidequest.setter import _off_loop, _Setter
from sidequest.signatures import NO_PERFORM, with_self

P = ParamSpec("P")
R = TypeVar("R")


class _Performer(Protocol[P]):
    """What the enqueue methods see of a job class: its ``perform``, whose parameters they
    take. Annotating ``cls`` with it lets mypy and pyright check each enqueue call against
    the ``perform`` of the very class it is made on."""

    def perform(self, *args: P.args, **kwargs: P.kwargs) -> object: ...


#: The worker running this process's jobs, if any (it sets itself here when it starts):
#: what ``Job.cancelled()`` and ``Job.stopping()`` ask.
_worker: Any = None


def install_worker(worker: Any) -> None:
    global _worker
    _worker = worker


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


def _fake_mode_on(helper: str, cls: _JobMeta | None = None) -> Any:
    """The testing module, once fake (or inline) mode is on (see ``testing.check_mode``);
    with ``cls``, jobs of it that fake mode kept may be read after it ended."""
    testing = _fake_mode()
    testing.check_mode(helper, cls is not None and testing.has_jobs(cls))
    return testing


class _JobMeta(type):
    """Lets the testing helpers be called on the class: ``SendWelcome.drain()``."""

    @property
    def jobs(cls) -> list[Payload]:
        """Fake mode: this class's queued payloads, the live list (``.jobs.clear()`` works)."""
        testing = _fake_mode_on(f"{cls.__name__}.jobs", cls)
        return testing.jobs_for(cls)  # type: ignore[no-any-return]

    def drain(cls) -> int:
        """Fake mode: run this class's queued jobs here; a job's exception is raised."""
        return int(_fake_mode_on(f"{cls.__name__}.drain()").drain(cls))

    def perform_one(cls) -> Payload:
        """Fake mode: run the oldest queued job of this class."""
        return dict(_fake_mode_on(f"{cls.__name__}.perform_one()").perform_one(cls))

    def clear(cls) -> None:
        """Fake mode: forget this class's queued jobs."""
        _fake_mode().clear(cls)


for _name in FOREIGN_CALLS:  # not seen by type checkers: a job class has no such attribute
    setattr(_JobMeta, _name, ForeignCall(_name))


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
    #: Seconds (or a timedelta) in which an identical push (class, queue, arguments) is
    #: dropped.
    unique_for: ClassVar[float | timedelta | None] = None
    #: When the unique lock is released: "start" or "success" (the default).
    unique_until: ClassVar[str | None] = None
    #: Seconds (or a timedelta) after its enqueue (or run time) by which the job must start,
    #: or be dropped.
    expires_in: ClassVar[float | timedelta | None] = None
    #: Seconds (or a timedelta) a run may take; past it the job gets sidequest.JobTimeout (a
    #: failure).
    timeout: ClassVar[float | timedelta | None] = None
    #: Keep the job's state, progress and result for sidequest.api.JobStatus.
    store_result: ClassVar[bool | None] = None
    #: Seconds (or a timedelta) the status and result are kept after their last change (24 h).
    result_ttl: ClassVar[float | timedelta | None] = None
    #: Push when the database transaction around the push commits, never on rollback (needs
    #: a database integration: ``sidequest.contrib.django``).
    enqueue_on_commit: ClassVar[bool | None] = None
    name: ClassVar[str | None] = None
    #: Set when the class is defined: ``perform`` is ``async def`` (it runs on the worker's
    #: event loop, not on a thread).
    async_perform: ClassVar[bool] = False

    jid: str = ""
    payload: Payload

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        where = f"job class {cls.__module__}.{cls.__qualname__}"
        own = validate_options({k: v for k, v in vars(cls).items() if k in OPTIONS}, where,
                               OPTIONS)
        for key in DURATIONS & own.keys():  # a timedelta, in seconds: payloads are JSON
            setattr(cls, key, own[key])
        check_typos(cls, where)
        cls.async_perform = inspect.iscoroutinefunction(cls.perform)
        if "perform" in vars(cls) or any("perform" in vars(b) for b in cls.__mro__[1:-2]):
            registry.register(cls)
        elif vars(cls).get("name"):  # a push-only stub names the job it stands for
            registry.note_stub(cls.wire_name(), cls)

    def perform(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define perform()")

    setattr(perform, NO_PERFORM, True)  # a push of a class that reaches it is refused

    def cancelled(self) -> bool:
        """True once ``sidequest.api.cancel(self.jid)`` was called (seen within a second): a
        long job checks it between steps and stops, saving its position if it can."""
        return _worker is not None and _worker.is_cancelled(self.jid)

    @property
    def batch(self) -> Batch | None:
        """The batch this job belongs to, if any: ``with self.batch.jobs(): ...`` adds the
        jobs pushed in the block to it."""
        # No payload: perform() called directly (Job().perform(...)), of no batch.
        payload = vars(self).get("payload") or {}
        ancestry = batch_members.ancestry_of(payload)
        if not ancestry:
            return None
        # One object per run: it counts the child batches the run makes, whose bids are
        # derived from the jid, so that a run again finds the children an earlier one left.
        opened = vars(self).get("_sq_batch")
        if opened is None:
            jid = payload.get("jid")
            opened = batch_module.Batch.open(ancestry, jid if isinstance(jid, str) else None)
            vars(self)["_sq_batch"] = opened
        return cast("Batch", opened)

    def set_progress(self, fraction: float, message: str | None = None) -> None:
        """Record how far the job is (0 to 1) and what it is doing, for
        ``sidequest.api.JobStatus`` (kept ``result_ttl``, 24 hours by default). Only a class
        with ``store_result = True`` keeps a status; the testing modes keep none."""
        status.check_progress(fraction)
        payload = vars(self).get("payload")  # none: perform() called directly, no status
        if client.pushes_are_local() or payload is None:
            return
        status.set_progress(payload, fraction, message)

    def stopping(self) -> bool:
        """True once the worker is quieted or shutting down: a long job may save its
        position and return (or raise) so that it is pushed back and resumed by the next
        worker."""
        return _worker is not None and _worker.is_stopping()

    # The enqueue methods. ``cls`` is typed as "a class with a perform" so that type checkers
    # take the parameters of this class's own perform; ``cls`` and the time are
    # positional-only, so perform's parameters may have any name.
    @classmethod
    def perform_async(cls: type[_Performer[P]], /, *args: P.args,
                      **kwargs: P.kwargs) -> str | None:
        """Enqueue ``perform(*args, **kwargs)`` to run now; returns the job id (None: a unique
        job whose identical twin is queued, scheduled or running, or a client middleware
        cancelled the push)."""
        return _setter(cls, {}).perform_async(*args, **kwargs)

    @classmethod
    def perform_in(cls: type[_Performer[P]], interval: float | timedelta, /, *args: P.args,
                   **kwargs: P.kwargs) -> str | None:
        """Enqueue to run after ``interval`` seconds (or a timedelta)."""
        return _setter(cls, {}).perform_in(interval, *args, **kwargs)

    @classmethod
    def perform_at(cls: type[_Performer[P]], when: float | datetime, /, *args: P.args,
                   **kwargs: P.kwargs) -> str | None:
        """Enqueue to run at ``when``, a datetime (naive = local time) or epoch seconds."""
        return _setter(cls, {}).perform_at(when, *args, **kwargs)

    @classmethod
    def perform_bulk(
        cls, args_list: Iterable[list[Any]], batch_size: int = client.BULK_BATCH
    ) -> list[str | None]:
        """Enqueue one job per argument list, one round trip per ``batch_size`` jobs."""
        return _Setter[Any](cls, {}).perform_bulk(args_list, batch_size)

    # From async code: the same pushes on a worker thread, so the event loop never waits on
    # Redis ("a" for awaitable, as in Django).
    @classmethod
    async def aperform_async(cls: type[_Performer[P]], /, *args: P.args,
                             **kwargs: P.kwargs) -> str | None:
        return await _off_loop(lambda: _setter(cls, {}).perform_async(*args, **kwargs))

    @classmethod
    async def aperform_in(cls: type[_Performer[P]], interval: float | timedelta, /,
                          *args: P.args, **kwargs: P.kwargs) -> str | None:
        return await _off_loop(lambda: _setter(cls, {}).perform_in(interval, *args, **kwargs))

    @classmethod
    async def aperform_at(cls: type[_Performer[P]], when: float | datetime, /,
                          *args: P.args, **kwargs: P.kwargs) -> str | None:
        return await _off_loop(lambda: _setter(cls, {}).perform_at(when, *args, **kwargs))

    @classmethod
    async def aperform_bulk(
        cls, args_list: Iterable[list[Any]], batch_size: int = client.BULK_BATCH
    ) -> list[str | None]:
        return await _off_loop(lambda: cls.perform_bulk(args_list, batch_size))

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
        for option in ("unique_for", "unique_until", "expires_in", "timeout", "store_result",
                       "result_ttl", "enqueue_on_commit"):
            if getattr(cls, option) is not None:
                base[option] = getattr(cls, option)
        return base

    @classmethod
    def set(cls: type[_Performer[P]], /, **options: Any) -> _Setter[P]:
        """Per-push options: ``SendWelcome.set(queue="critical").perform_async(42)``."""
        job_cls = cast("type[Job]", cls)
        return _setter(cls, validate_options(options, f"{job_cls.wire_name()}.set()",
                                             PUSH_OPTIONS))

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: Payload) -> float | str | None:
        return None

    @classmethod
    def retries_exhausted(cls, payload: Payload, exc: BaseException) -> None:
        return None


def _setter(cls: type[_Performer[P]], options: dict[str, Any]) -> _Setter[P]:
    # The enqueue methods are only ever bound to Job subclasses; the annotation of their
    # ``cls`` is for the type checker's benefit.
    return _Setter(cast("type[Job]", cls), options)


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
        self.__qualname__ = getattr(func, "__qualname__", self.__name__)
        self.__module__ = getattr(func, "__module__", None) or job_class.__module__
        self.__wrapped__ = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def perform(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function now, in this process: what ``SendWelcome().perform(42)`` does for
        a class (without this, the class's unbound perform took the first argument as self)."""
        return self.func(*args, **kwargs)

    def perform_async(self, /, *args: P.args, **kwargs: P.kwargs) -> str | None:
        return self.set().perform_async(*args, **kwargs)

    def perform_in(self, interval: float | timedelta, /, *args: P.args,
                   **kwargs: P.kwargs) -> str | None:
        return self.set().perform_in(interval, *args, **kwargs)

    def perform_at(self, when: float | datetime, /, *args: P.args,
                   **kwargs: P.kwargs) -> str | None:
        return self.set().perform_at(when, *args, **kwargs)

    def perform_bulk(
        self, args_list: Iterable[list[Any]], batch_size: int = client.BULK_BATCH
    ) -> list[str | None]:
        return self.job_class.perform_bulk(args_list, batch_size)

    def set(self, **options: Any) -> _Setter[P]:
        where = f"{self.job_class.wire_name()}.set()"
        return _Setter(self.job_class, validate_options(options, where, PUSH_OPTIONS))

    def __getattr__(self, item: str) -> Any:
        # Testing helpers (jobs, drain, perform_one, clear) live on the class. Not dunders nor
        # our fields: copy looks them up on a bare instance, where job_class recursed here.
        if item.startswith("__") or item in ("func", "job_class"):
            raise AttributeError(item)
        return getattr(self.job_class, item)

    def __reduce__(self) -> str:
        # Pickled by name, as the function it stands for in its module would be.
        return self.__qualname__


@overload
def job(func: Callable[P, R], /) -> JobFunction[P, R]: ...
@overload
def job(func: None = None, /, **options: Any) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...
def job(
    func: Callable[P, R] | None = None, /, **options: Any
) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
    """Turn a function into a job: ``@job`` or ``@job(queue="low", retry=3)``."""

    def wrap(fn: Callable[P, R]) -> JobFunction[P, R]:
        _check_decorated(fn)
        where = f"@job on {fn.__module__}.{fn.__qualname__}"
        checked = validate_options(options, where, OPTIONS)

        # The function's return value is the job's result (kept with store_result=True).
        def perform(self: Job, *args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        async def perform_async_fn(self: Job, *args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **kwargs)  # type: ignore[misc]

        if inspect.iscoroutinefunction(fn):  # an async def job: its perform is one too
            perform = perform_async_fn
        perform.__signature__ = with_self(fn)  # type: ignore[attr-defined]

        attrs: dict[str, Any] = {
            "perform": perform,
            "__module__": fn.__module__,
            "__qualname__": fn.__qualname__,
            "__doc__": fn.__doc__,
            **checked,
        }
        return JobFunction(fn, _JobMeta(fn.__name__, (Job,), attrs))  # type: ignore[arg-type]

    return wrap(func) if func is not None else wrap


def _check_decorated(fn: object) -> None:
    """Refuse what ``@job`` cannot turn into a job, saying what to write instead (else it
    fails on a missing ``__module__``, or wraps a job in a second job)."""
    if isinstance(fn, str):  # RQ's @job('low'): the queue, given by position
        raise TypeError(f"@job({fn!r}): @job takes its options by name; write"
                        f" @job(queue={fn!r}) for a queue (or name={fn!r} for the job's name)")
    if isinstance(fn, type) and issubclass(fn, Job):
        raise TypeError(f"@job on {fn.__qualname__}: it is a Job class already, enqueued as it"
                        f" is ({fn.__qualname__}.perform_async(...)) with its options as class"
                        " attributes; remove @job, which is for plain functions")
    if isinstance(fn, JobFunction):
        raise TypeError(f"@job on {fn.__name__}: it is an @job function already; apply @job"
                        " once, with every option: @job(queue='low', retry=3)")
    if not callable(fn):
        raise TypeError(f"@job turns a function into a job, but got {type(fn).__name__}"
                        f" {fn!r}; put @job (or @job(queue='low', ...)) above a def")
