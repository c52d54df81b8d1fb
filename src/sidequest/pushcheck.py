"""Checked when a job is pushed, before anything reaches Redis: a worker will be able to
import the job's class by its name (else it would fail only in the worker, where a job
retries for weeks). Whether the arguments fit ``perform`` is signatures.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sidequest import client
from sidequest.errors import ConfigError

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
