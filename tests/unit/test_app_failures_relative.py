"""``cd shop && sidequest -r jobs`` where jobs.py uses relative imports: the failure says the
module is part of a package and how to run the worker so that it is imported as one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidequest.app_loader import load_app
from sidequest.errors import ConfigError

RELATIVE_JOBS = """
from .models import Order
from sidequest import Job

class RelShip(Job):
    def perform(self, order_id):
        pass
"""

#: Names imported from the temporary folders: dropped after each test.
NAMES = ("relshop", "reljobs", "relapp", "models")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project root holding the package ``relshop``, whose reljobs.py imports relatively."""
    package = tmp_path / "relshop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("Order = object\n")
    (package / "reljobs.py").write_text(RELATIVE_JOBS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [m for m in sys.modules if m.partition(".")[0] in NAMES]:
        del sys.modules[name]


def failure(target: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_app((target,))
    return str(caught.value)


def test_run_from_inside_the_package_it_says_to_run_from_above_with_the_package(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: "...: ImportError: attempted relative import with no known parent package"
    # and nothing more.
    monkeypatch.chdir(project / "relshop")
    message = failure("reljobs")
    file = project / "relshop" / "reljobs.py"
    assert message == (
        f"could not import 'reljobs': {file}:2: ImportError: attempted relative import with"
        f" no known parent package. reljobs.py is the module relshop.reljobs of the package"
        f" 'relshop', and its relative imports work only when it is imported under that name:"
        f" run the worker from the directory above the package and name the module with it:"
        f" cd .. && sidequest -r relshop.reljobs")
    # Another ImportError of the app's module gets no such hint.
    (project / "relshop" / "models.py").write_text("from os import nothing_here\n")
    monkeypatch.chdir(project)
    other = failure("relshop.models")
    assert "cannot import name 'nothing_here'" in other
    assert "relative import" not in other and "sidequest -r" not in other


def test_the_command_keeps_an_app_factory_and_names_nested_packages(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = project / "relshop" / "relsub"
    nested.mkdir()
    (nested / "__init__.py").write_text("")
    (nested / "reljobs.py").write_text("from ..models import Order\n\ndef create_app():\n"
                                       "    return None\n")
    monkeypatch.chdir(nested)
    message = failure("reljobs:create_app()")
    assert "ImportError: attempted relative import with no known parent package." in message
    assert "reljobs.py is the module relshop.relsub.reljobs of the package 'relshop'" in message
    assert message.endswith("cd ../.. && sidequest -r 'relshop.relsub.reljobs:create_app()'")


def test_a_module_imported_by_the_target_is_the_one_named(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # -r relapp, whose module imports reljobs (beside it, in the package) without the
    # package: the relative import fails in reljobs.py. Running relapp from above would
    # break its own `import reljobs`, so no command is given (one was, and it failed too).
    (project / "relshop" / "relapp.py").write_text("import reljobs  # noqa\n")
    monkeypatch.chdir(project / "relshop")
    message = failure("relapp")
    assert message.endswith(". reljobs.py uses a relative import but was imported as a module"
                            " of no package: import it relatively too where it is imported"
                            " (from . import reljobs), and name the target with its package")
    assert "sidequest -r" not in message


def test_a_relative_import_beyond_the_package_gets_no_hint() -> None:
    # "beyond top-level package" starts the same way; it was told to run the very command
    # just run.
    from sidequest.app_failures import import_failure

    exc = ImportError("attempted relative import beyond top-level package")
    assert import_failure("relshop.sub.jobs", "relshop.sub.jobs", exc, "relshop.sub.jobs") \
        .endswith("ImportError: attempted relative import beyond top-level package")


def test_a_folder_without_init_is_told_to_become_a_package(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = project / "relplain"
    plain.mkdir()
    (plain / "reljobs.py").write_text(RELATIVE_JOBS)
    monkeypatch.chdir(plain)
    message = failure("reljobs")
    assert message.endswith(
        f". reljobs.py uses a relative import, which works only in a module of a package, and"
        f" {plain} has no __init__.py: add one to make it a package, then run the worker from"
        f" the directory above it and name the module with the package (-r relplain.reljobs)")

