"""``-r`` with an app factory (``-r 'myapp:create_app()'``, the Flask layout whose jobs are
imported only when the app is made), and a worker started from inside its own package."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidequest.app_loader import load_app
from sidequest.errors import ConfigError

#: A package whose jobs module is imported only by its factory, as a blueprint would.
FACTORY = """
made = []
app = object()


def create_app(name="web", debug=False):
    from lfpkg import lfjobs  # noqa: F401

    made.append((name, debug))
    return name


def broken_app():
    raise RuntimeError("no database configured")
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project root holding the ``lfpkg`` package, as the working directory."""
    package = tmp_path / "lfpkg"
    package.mkdir()
    (package / "__init__.py").write_text(FACTORY)
    (package / "lfjobs.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "lfpkg" or m.startswith("lfpkg.")]:
        del sys.modules[name]


def made() -> list[tuple[str, bool]]:
    return list(sys.modules["lfpkg"].made)


def test_the_factory_named_after_a_colon_is_called(project: Path) -> None:
    # Before: "No module named 'lfpkg:create_app()'".
    assert load_app(("lfpkg:create_app()",)) == []  # no module left with an uncalled factory
    assert made() == [("web", False)] and "lfpkg.lfjobs" in sys.modules


def test_the_factory_takes_literal_arguments_as_flask_does(project: Path) -> None:
    load_app(("lfpkg:create_app('worker', debug=True)",))
    assert made() == [("worker", True)]


def test_a_function_named_without_brackets_is_called_and_anything_else_looked_up(
        project: Path) -> None:
    load_app(("lfpkg:create_app",))
    load_app(("lfpkg:app",))  # the app the import made: nothing to call
    assert made() == [("web", False)]


def test_a_file_with_a_factory(project: Path) -> None:
    load_app(("lfpkg/__init__.py:create_app()",))
    assert "lfpkg.lfjobs" in sys.modules


@pytest.mark.parametrize(("target", "said"), [
    ("lfpkg:create_ap()", "-r lfpkg:create_ap(): module 'lfpkg' has no attribute 'create_ap';"
                          " did you mean 'create_app'?"),
    ("lfpkg:app()", "-r lfpkg:app(): lfpkg.app cannot be called (its type is object): use"
                    " -r lfpkg:app (without the brackets)"),
    ("lfpkg:create_app(1, 2, 3)", "-r lfpkg:create_app(1, 2, 3): too many positional"
                                  " arguments; it is create_app(name='web', debug=False)"),
    ("lfpkg:create_app(os.environ)", "-r lfpkg:create_app(os.environ): after the colon, name"
                                     " the app factory and call it"),
    ("lfpkg:create_app()()", "-r lfpkg:create_app()(): after the colon, name the app"
                             " factory and call it"),
])
def test_a_factory_that_cannot_be_called_says_why(project: Path, target: str,
                                                   said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_app((target,))
    assert str(caught.value).startswith(said)
    assert made() == []


def test_a_factory_that_raises_shows_its_traceback(project: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_app(("lfpkg:broken_app()",))
    assert str(caught.value) == ("could not load -r lfpkg:broken_app(): RuntimeError: no"
                                 " database configured (the traceback above is your"
                                 " factory's)")
    shown = capsys.readouterr().err
    assert 'lfpkg/__init__.py", line 14, in broken_app' in shown
    assert "app_loader" not in shown


def test_a_module_with_an_uncalled_factory_is_pointed_out(project: Path) -> None:
    from sidequest.app_loader import factory_hint  # new: the old module had none

    loaded = load_app(("lfpkg",))
    assert loaded == ["lfpkg"]
    assert factory_hint(loaded) == ("; lfpkg defines create_app() but nothing calls it: to"
                                    " make the app (and import the jobs it imports), pass"
                                    " -r 'lfpkg:create_app()'")
    assert factory_hint(["lfpkg.lfjobs"]) == ""


@pytest.fixture
def inside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``lfshop``, a package whose app.py imports ``lfshop.lfjobs``, as the working
    directory: `cd lfshop && sidequest -r app`."""
    package = tmp_path / "lfshop"
    (package / "sub").mkdir(parents=True)
    for init in (package, package / "sub"):
        (init / "__init__.py").write_text("")
    (package / "lfjobs.py").write_text("")
    (package / "app.py").write_text("import os\nimport lfshop.lfjobs\n")
    (package / "sub" / "deep.py").write_text("import lfshop.lfjobs\n")
    monkeypatch.chdir(package)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield package
    for name in ("app", "deep", "sub", "sub.deep"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(("target", "command"), [
    ("app", "cd .. && sidequest -r lfshop.app"),
    ("app.py", "cd .. && sidequest -r lfshop/app.py"),
    ("app:create_app()", "cd .. && sidequest -r 'lfshop.app:create_app()'"),
    ("lfshop.app", "cd .. && sidequest -r lfshop.app"),
])
def test_a_worker_inside_its_package_is_told_where_to_run_not_to_pip_install(
        inside: Path, target: str, command: str) -> None:
    # Before: "no module named 'lfshop' is installed in this Python ... (pip install lfshop)",
    # an unrelated package of that name, if PyPI has one.
    with pytest.raises(ConfigError) as caught:
        load_app((target,))
    said = str(caught.value)
    assert said.startswith(f"could not import {target!r}: ")
    assert said.endswith(f"'import lfshop' failed: the worker runs inside the package 'lfshop'"
                         f" ({inside}), and Python finds a package only from the directory"
                         f" that holds it. Run the worker from {str(inside.parent)!r}:"
                         f" {command}")
    assert "pip install" not in said


def test_deeper_inside_the_package_the_command_climbs_to_its_parent(
        inside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inside / "sub")
    with pytest.raises(ConfigError) as caught:
        load_app(("deep",))
    assert str(caught.value).endswith(f"Run the worker from {str(inside.parent)!r}:"
                                      " cd ../.. && sidequest -r lfshop.sub.deep")


def test_a_package_not_of_the_working_directory_still_says_pip_install(
        inside: Path) -> None:
    (inside / "other.py").write_text("import lf_not_installed_xyz\n")
    with pytest.raises(ConfigError, match=r"pip install lf_not_installed_xyz"):
        load_app(("other",))


@pytest.mark.parametrize(("target", "meant"), [
    ("shop.create_app()", "shop:create_app()"),
    ("shop.factory.make_app(debug=True)", "shop.factory:make_app(debug=True)"),
])
def test_a_factory_joined_with_a_dot_is_refused_with_the_colon_form(
        target: str, meant: str) -> None:
    # It read as a module named 'shop.create_app()', with advice to run from the root.
    with pytest.raises(ConfigError, match=rf"follows the module after a colon: -r '{meant}'"
                       .replace("(", r"\(").replace(")", r"\)")):
        load_app((target,))
