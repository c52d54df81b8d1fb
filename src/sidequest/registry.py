"""Job classes by wire name: what a worker runs when a payload says ``"class": "..."``."""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import sys
import threading
from typing import TYPE_CHECKING

from sidequest.errors import ConfigError, UnknownJobError

if TYPE_CHECKING:
    from sidequest.job import Job

_lock = threading.Lock()
_jobs: dict[str, type[Job]] = {}
#: Push-only stubs by name (a class without perform: a job another process runs).
_stubs: dict[str, type[Job] | None] = {}
#: The class Rails' ActiveJob pushes for every job it hands to Sidekiq.
ACTIVE_JOB_WRAPPER = "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"
#: How a worker that meets an unknown job is told to load its class: a worker started
#: another way (Django's manage.py sidequest, which imports each app's jobs.py) sets its own.
LOAD_HINT = "make sure the worker imports the module that defines it (sidequest -r yourapp.jobs)"


def note_stub(name: str, cls: type[Job] | None = None) -> None:
    """A push-only stub is named ``name``: a worker that fetches such a job says so, and a
    batch callback given by that name takes the stub's options (its queue)."""
    with _lock:
        _stubs[name] = cls


def stub(name: str) -> type[Job] | None:
    """The push-only stub named ``name``, or None."""
    return _stubs.get(name)


def runs_here(cls: type[Job]) -> bool:
    """Whether this process runs jobs of ``cls``: false for a push-only stub, whose job
    another process runs (a Ruby one, say)."""
    return _jobs.get(cls.wire_name()) is not None


def register(cls: type[Job]) -> None:
    name = cls.wire_name()
    with _lock:
        old = _jobs.get(name)
        same = old is not None and (old.__module__, old.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if old is not None and not same:
            raise ConfigError(
                f"two job classes share the name {name!r}: {old.__module__}.{old.__qualname__}"
                f" and {cls.__module__}.{cls.__qualname__}; give one of them name = '...'"
            )
        _jobs[name] = cls


def lookup(name: str) -> type[Job]:
    cls = _jobs.get(name)
    if cls is None:
        raise UnknownJobError(why_unknown(name))
    return cls


def why_unknown(name: str) -> str:
    """What to do about a job named ``name`` that no class here defines, for its error."""
    if name in _stubs:
        return (f"{name!r} is a push-only stub in this process (a class without perform, for"
                f" a job another process runs, Ruby's say): this worker fetched it because it"
                f" serves the job's queue. Give the stub a queue = '...' that only the other"
                f" process serves, or define perform to run it here")
    if name == ACTIVE_JOB_WRAPPER:
        return ("an ActiveJob job from Rails: these run only in Ruby (their arguments are"
                " ActiveJob's serialization). Keep their queues off this worker's -q, or push"
                " the job to Python with Sidekiq::Client.push and a class name it defines")
    known = bare_name(name) or _imported_twice(name) or _plain_function(name)
    if known:
        return known
    module = name.rpartition(".")[0]
    if module in sys.modules:
        return _gone_from(name, module)
    return (f"no job class named {name!r} is loaded in this process; {LOAD_HINT}, and check"
            f" that its name matches (set name = {name!r} on a class to share it with Ruby)")


def _imported_twice(name: str) -> str | None:
    """The same class under another module path: the pusher imported the module by another
    name (run from inside the package: "jobs" for app/jobs.py), which the push-time check
    cannot always see (a package without __init__.py)."""
    tail = name.rsplit(".", 1)[-1]
    twins = [known for known in _jobs if known != name and known.rsplit(".", 1)[-1] == tail]
    if not twins or "." not in name:
        return None
    pushed, here = name.rsplit(".", 1)[0], twins[0].rsplit(".", 1)[0]
    return (f"no job class named {name!r} is loaded in this process, but {twins[0]!r} is:"
            f" the process that pushed it imported the module as {pushed!r}, this worker"
            f" as {here!r} (each names it from where it runs, or from its sys.path). Import"
            " it under one name in both, from the project root, or give the class an"
            " explicit name = '...'")


def _gone_from(name: str, module: str) -> str:
    """A job whose module this worker loads, without the class: renamed or removed by a
    deploy after older code pushed it (or a slip in the pushing code)."""
    what = near_miss(name) or f"no job {name!r} is defined"
    return (f"{what}{' ' if what.endswith('?') else '. '}If a deploy renamed or"
            f" removed the class after older code pushed this job, keep the old class (or set"
            f" name = {name!r} on its replacement) until the jobs it pushed have run, or delete"
            " them; the job retries as any failure does")


def _plain_function(name: str) -> str | None:
    """An RQ habit: a plain function pushed by its path. Looked up only in a module this
    process loaded already: a payload never makes it import anything."""
    module, _, attr = name.rpartition(".")
    # vars(), not getattr: a module's own __getattr__ (lazy exports) would import things.
    found = vars(sys.modules[module]).get(attr) if module in sys.modules else None
    if not inspect.isfunction(found):
        return None
    return (f"{name!r} is a plain function, not a job: decorate it with @job (from sidequest"
            f" import job) so that a worker can run it, and push it with"
            f" {attr}.perform_async(...)")


def find(name: object) -> type[Job] | None:
    """The class registered under ``name``, or None."""
    return _jobs.get(name) if isinstance(name, str) else None


def near_miss(name: str) -> str | None:
    """For a job name this process does not define: what is wrong when its module is loaded
    here (the name is a slip, not another process's job); None otherwise."""
    if find(name) is not None or name in _stubs:  # a stub: declared another process's job
        return None
    module, _, attr = name.rpartition(".")
    if not module:  # a Ruby class's name, say, even when a job here has it as its own
        return None
    if module not in sys.modules:
        return _missing_module(name, module)
    there = [known for known in names() if known.startswith(module + ".")]
    close = difflib.get_close_matches(name, there, 1)
    hint = (f"; did you mean {close[0]!r}?" if close
            else f"; its job classes: {', '.join(there)}" if there else "")
    return (f"the module {module!r} is loaded but defines no job {attr!r} (a Job class or an"
            f" @job function){hint}")


def bare_name(name: str) -> str | None:
    """A class's own name where its full one was meant ("Heartbeat" for a loaded
    "app.periodic.Heartbeat"): a job's name includes its module unless its class sets one.
    Asked only of a job this process fetched (or would): elsewhere, such a name may well be
    another process's (Ruby's classes have bare names)."""
    if "." in name or name in _stubs:
        return None
    full = sorted(known for known in _jobs if known.rsplit(".", 1)[-1] == name)
    if not full:
        return None
    meant = " or ".join(repr(known) for known in full[:3])
    return (f"no job is named {name!r}, but {meant} {'is' if len(full) == 1 else 'are'} loaded"
            f" here (a job's name includes its module, unless its class sets name = '...');"
            f" did you mean {meant}?")


def _missing_module(name: str, module: str) -> str | None:
    """A slip in the module part ("app.pjob.Beat" for "app.pjobs.Beat"): the module exists
    nowhere on this process's path, and a job loaded here has almost that name. Another
    service's job, in a module this process lacks, is rarely that close to one of ours."""
    close = difflib.get_close_matches(name, names(), 1, cutoff=0.9)
    if not close or _importable(module):
        return None
    return (f"no module {module!r} exists where this process looks, and {close[0]!r} is a job"
            f" loaded here; did you mean {close[0]!r}?")


def _importable(module: str) -> bool:
    parent = module.rpartition(".")[0]
    if parent and parent not in sys.modules:
        return True  # finding it would import its package: assume it is another's module
    if parent and not hasattr(sys.modules[parent], "__path__"):
        return True  # a plain module's attribute, not a module: a nested class, say
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def names() -> list[str]:
    return sorted(_jobs)


def all_jobs() -> list[type[Job]]:
    return list(_jobs.values())
