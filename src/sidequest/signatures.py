"""Whether arguments fit a job's ``perform``: checked at each push (a push ``perform`` cannot
take would fail only in the worker, and retry for weeks), for batch callbacks and periodic
entries when they are defined, and explained when a worker's call does not bind (a payload
from older code or another client).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

#: Set on ``Job.perform``, the base's stand-in: a class that reaches it defines no perform.
NO_PERFORM = "__sidequest_no_perform__"

_signatures: dict[type, inspect.Signature | None] = {}
#: Per job class, the range of positional argument counts its ``perform`` takes when that is
#: all there is to check (no keyword-only parameter without a default); None otherwise.
_counts: dict[type, tuple[int, float] | None] = {}


def with_self(fn: Callable[..., Any]) -> inspect.Signature | None:
    """``fn``'s signature with a leading ``self``, as a method's: what a push is checked on."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[this, *signature.parameters.values()])


#: Added to the error when a worker's call of ``perform`` does not bind: the push was not
#: checked against this code (an older version of the job, or another client).
IN_WORKER = ("; the job was pushed with arguments this version of perform does not accept "
             "(by another version of the code, older or newer than this worker's, or by a "
             "client that does not check them, such as Ruby Sidekiq). It retries as any "
             "failure does: deploy a perform that accepts them, or delete the job")


def check_call(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any],
               hint: str = "") -> None:
    """Refuse a push whose arguments ``perform`` cannot take, naming the job and the signature,
    now rather than as a TypeError in the worker (retried for weeks). A worker calls it with
    ``hint=IN_WORKER`` after ``perform`` raised a TypeError, to say which kind it was."""
    if cls not in _signatures:
        _learn(cls)
    signature = _signatures[cls]
    # Only a stub for another process's class (its own ``name``) may go without a perform.
    if getattr(cls.perform, NO_PERFORM, False) and not vars(cls).get("name"):  # type: ignore[attr-defined]
        _no_perform(cls)
    if signature is None:
        return
    counts = _counts[cls]
    if counts is not None and not kwargs and counts[0] <= len(args) <= counts[1]:
        return  # the common push: positional arguments only, as many as perform takes
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        plain = [p.replace(annotation=inspect.Parameter.empty)
                 for p in list(signature.parameters.values())[1:]]
        shown = inspect.Signature(plain)
        name = vars(cls).get("name") or f"{cls.__module__}.{cls.__qualname__}"
        why = _unknown_keyword(signature, kwargs) or str(exc)
        raise TypeError(f"{name}.perform{shown} cannot take these arguments: {why}{hint}"
                        ) from None


def _unknown_keyword(signature: inspect.Signature, kwargs: dict[str, Any]) -> str | None:
    """A misspelt keyword first: bind() names the required argument it left missing
    ('key'), not the one given by mistake ('k')."""
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    takes = [n for n, p in parameters.items() if p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = next((key for key in kwargs if key not in takes), None)
    if unknown is None:
        return None
    if unknown in parameters:  # positional-only: named, but not by keyword
        return f"{unknown!r} is positional-only: pass it without its name"
    close = difflib.get_close_matches(unknown, takes, 1)
    return f"no parameter named {unknown!r}" + (f"; did you mean {close[0]!r}?" if close else "")


def _no_perform(cls: type) -> None:
    """Refuse a push of a class that defines no perform (a base class, or a misspelt
    ``def preform``): in the worker it would be an unknown class, retried for weeks."""
    own: set[str] = set()
    for base in cls.__mro__:
        if getattr(vars(base).get("perform"), NO_PERFORM, False):
            break  # the Job base: its methods are not the user's
        own.update(name for name, value in vars(base).items()
                   if callable(value) and not name.startswith(("_", "perform")))
    near = difflib.get_close_matches("perform", sorted(own), n=1, cutoff=0.7)
    hint = f"; did you mean to name {near[0]!r} perform?" if near else ""
    raise TypeError(f"{cls.__module__}.{cls.__qualname__} defines no perform(), so no worker"
                    f" could run it: give it a `def perform(self, ...)`{hint} (to push a job"
                    " that another process runs, a Ruby class say, set `name` to its name)")


def _learn(cls: type) -> None:
    try:
        signature: inspect.Signature | None = inspect.signature(cls.perform)  # type: ignore[attr-defined]
    except (TypeError, ValueError):  # a C function or odd callable: nothing to check
        signature = None
    # _counts first: a thread that finds cls in _signatures reads both without a lock.
    _counts[cls] = None if signature is None else _positional_counts(signature)
    _signatures[cls] = signature


def _positional_counts(signature: inspect.Signature) -> tuple[int, float] | None:
    """How many positional arguments (after self) ``signature`` takes, at least and at most;
    None when a call with those alone could still fail (a required keyword-only one)."""
    low, high = 0, 0.0
    kind = inspect.Parameter
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (kind.POSITIONAL_ONLY,
                                                    kind.POSITIONAL_OR_KEYWORD):
        return None  # no self to drop (a static perform?): leave it to bind
    for parameter in parameters[1:]:
        if parameter.kind in (kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD):
            high += 1
            low += parameter.default is kind.empty
        elif parameter.kind is kind.VAR_POSITIONAL:
            high = float("inf")
        elif parameter.kind is kind.KEYWORD_ONLY and parameter.default is kind.empty:
            return None
    return low, high


def call_perform(instance: Any, args: Any, kwargs: Any) -> Any:
    """``instance.perform(*args, **kwargs)``, for a worker. Arguments that do not fit the
    signature raise a TypeError from the caller's frame, whose traceback shows only
    Sidequest's code: such an error is replaced by one naming the signature and the cause."""
    try:
        return instance.perform(*args, **kwargs)
    except TypeError:
        check_call(type(instance), tuple(args), kwargs, IN_WORKER)
        raise


def check_bulk(cls: type, args_lists: Iterable[list[Any]]) -> None:
    """``check_call`` for each job of a bulk push (positional arguments only). Whether
    ``perform`` binds them depends only on how many there are, so each count is checked once:
    a push of many jobs pays a set lookup per job, not a signature bind."""
    fits: set[int] = set()
    for position, args in enumerate(args_lists):
        if len(args) in fits:
            continue
        try:
            check_call(cls, tuple(args), {})
        except TypeError as exc:
            raise TypeError(f"perform_bulk item {position}: {exc}; none of the jobs was "
                            "enqueued") from None
        fits.add(len(args))


def check_bulk_lists(args_lists: object) -> None:
    """Refuse a ``perform_bulk`` argument that is no list of argument lists at all (None, a
    string, a dict), which would fail as a bare "not iterable" or push one job per item."""
    if args_lists is None or isinstance(args_lists, (str, bytes, dict)) or not isinstance(
            args_lists, Iterable):
        raise TypeError(f"perform_bulk takes a list of argument lists, one per job, such as"
                        f" [[1], [2], [3]] for perform(1), perform(2) and perform(3); got"
                        f" {type(args_lists).__name__}: {args_lists!r}")
