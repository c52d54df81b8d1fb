"""Other job systems' ways to push (Celery's ``delay``, Dramatiq's ``send``, ...): looked up
on a job class that has no such attribute, they raise an AttributeError that says which call
to make here. The metaclass of job classes (job.py) carries one ``ForeignCall`` per name."""

from __future__ import annotations

from typing import Any

#: Pushing as other job systems spell it, and what to write instead.
FOREIGN_CALLS = {
    "delay": "push with perform_async(...) (Celery's delay)",
    "apply_async": "push with perform_async(...), perform_in(seconds, ...) for a countdown or"
                   " perform_at(when, ...) for an eta, and .set(queue=...) for options",
    "s": "Sidequest has no signatures: push with perform_async(...); to run a job after"
         " others, see Batch callbacks",
    "si": "Sidequest has no signatures: push with perform_async(...); to run a job after"
          " others, see Batch callbacks",
    "send": "push with perform_async(...) (Dramatiq's send)",
    "enqueue": "push with perform_async(...), or sidequest.enqueue('module.Class', ...)",
}


class ForeignCall:
    """``JobClass.<name>`` for another job system's way to push (Celery's ``delay``), when the
    class has no attribute of that name: an AttributeError saying which call to make. A
    descriptor of the metaclass with ``__get__`` only, so that the class's own attribute of
    that name wins, and setting one (``mock.patch.object``, ``monkeypatch``) works as on any
    class; not a ``__getattr__``, which would run Python code on every attribute a push looks
    up and misses (a fifth of a bulk push)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, cls: type | None, meta: type | None = None) -> Any:
        owner = cls.__name__ if cls is not None else "Job"
        raise AttributeError(f"type object {owner!r} has no attribute {self.name!r};"
                             f" {FOREIGN_CALLS[self.name]}", name=self.name, obj=cls)
