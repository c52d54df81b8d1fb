"""The unit and integration tests on every Python Sidequest supports.

`make test` runs the whole suite on the development environment's Python (.venv) and these
sessions on the others (`make python-3.12`, or `nox -s tests-3.12` by hand); each session
builds its own environment under .nox, with uv. An interpreter is found as `python3.X` on
PATH, or in pyenv's versions directory (where `pyenv install 3.12` puts it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def _pyenv_bins() -> list[str]:
    """The newest pyenv-installed patch release of each supported version, as bin dirs. pyenv's
    shims are not enough: a shim for a version that is not selected fails when run."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: list[str] = []
    for version in PYTHONS:
        patches = [path for path in root.glob(f"{version}.*")
                   if re.fullmatch(rf"{re.escape(version)}\.\d+", path.name)]
        if patches:
            newest = max(patches, key=lambda path: int(path.name.rsplit(".", 1)[1]))
            found.append(str(newest / "bin"))
    return found


os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Unit and integration tests; the fault, browser and Ruby interop suites run once, on the
    main environment's Python, in `make test`."""
    session.install("-e", ".[dev]")  # dev: mypy and pyright for tests/unit/test_typing.py
    # Load tests, which measure the machine more than the interpreter ("slow"), run once too.
    args = session.posargs or ["tests/unit", "tests/integration", "-m", "not slow and not timed"]
    session.run("pytest", "-q", "-p", "no:cacheprovider", *args)


# tests/django: the Django integration on Django 6 (Python 3.12 or later) and on Django 5.2
# with the django-tasks backport; `make check-django` runs both.
@nox.session(python="3.12")
def django6(session: nox.Session) -> None:
    session.install("-e", ".[django,dev-django]")
    session.run("pytest", "-q", "-p", "no:cacheprovider", *(session.posargs or ["tests/django"]))


@nox.session(python="3.11")
def django52(session: nox.Session) -> None:
    session.install("-e", ".[django,dev-django]", "django>=5.2,<6", "django-tasks>=0.12")
    session.run("pytest", "-q", "-p", "no:cacheprovider", *(session.posargs or ["tests/django"]))
