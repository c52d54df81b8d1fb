"""``-r`` as users write it: a module or a file path gives the same job names, and an import
that fails says which import, where, and what to do."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidequest import registry
from sidequest.app_loader import load_app
from sidequest.errors import ConfigError

JOBS = """
from sidequest import Job

class LoadAppWelcome(Job):
    def perform(self, user_id):
        pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project root holding an ``lappkg`` package, as the working directory."""
    package = tmp_path / "lappkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(JOBS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "lappkg" or m.startswith("lappkg.")]:
        del sys.modules[name]


@pytest.mark.parametrize("target", ["lappkg/jobs.py", "lappkg.jobs"])
def test_a_file_path_gives_the_same_job_names_as_the_module(project: Path, target: str) -> None:
    load_app((target,))
    assert "lappkg.jobs" in sys.modules and "jobs" not in sys.modules
    assert registry.lookup("lappkg.jobs.LoadAppWelcome").__module__ == "lappkg.jobs"


def test_a_file_outside_the_working_directory_is_named_by_its_packages(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    load_app((str(project / "lappkg" / "jobs.py"),))
    assert registry.lookup("lappkg.jobs.LoadAppWelcome").__module__ == "lappkg.jobs"


def test_a_file_below_the_working_directory_is_named_by_its_packages(project: Path) -> None:
    """Run from above the project root (no package there): project/lappkg/jobs.py is
    lappkg.jobs, as the app that pushes knows it, not <project>.lappkg.jobs."""
    above = project.parent
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(above)
        load_app((f"{project.name}/lappkg/jobs.py",))
    assert "lappkg.jobs" in sys.modules
    assert not [m for m in sys.modules if m.startswith(f"{project.name}.")]
    assert registry.lookup("lappkg.jobs.LoadAppWelcome").__module__ == "lappkg.jobs"


def test_a_file_in_a_namespace_package_is_named_from_the_working_directory(
        project: Path) -> None:
    (project / "nsapp").mkdir()
    (project / "nsapp" / "nsjobs.py").write_text(JOBS.replace("LoadAppWelcome", "NsWelcome"))
    try:
        load_app(("nsapp/nsjobs.py",))
        assert registry.lookup("nsapp.nsjobs.NsWelcome").__module__ == "nsapp.nsjobs"
    finally:
        for name in ("nsapp", "nsapp.nsjobs"):
            sys.modules.pop(name, None)


def test_a_django_module_without_django_set_up_says_to_use_manage_py(project: Path) -> None:
    """Django's own error names settings, not the worker command that sets them up."""
    (project / "lappkg" / "djangoish.py").write_text(
        "class ImproperlyConfigured(Exception):\n    pass\n\n"
        "raise ImproperlyConfigured('Requested setting INSTALLED_APPS, but settings are not"
        " configured')\n")
    with pytest.raises(ConfigError, match=r"could not import 'lappkg.djangoish': it needs Django"
                       r" set up \(ImproperlyConfigured: Requested setting .*\)\. Run the"
                       r" worker as `python manage.py sidequest`"):
        load_app(("lappkg.djangoish",))


def test_a_missing_package_is_named_with_the_file_and_line(project: Path) -> None:
    (project / "lappkg" / "broken.py").write_text("import os\nimport not_installed_xyz\n")
    with pytest.raises(ConfigError) as caught:
        load_app(("lappkg.broken",))
    message = str(caught.value)
    assert "broken.py:2" in message
    assert "'import not_installed_xyz' failed" in message
    assert "pip install not_installed_xyz" in message
    assert "root directory" not in message


def test_a_module_that_is_not_there_says_where_to_run_from(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"could not import 'nothere\.jobs'.*root directory"):
        load_app(("nothere.jobs",))
    with pytest.raises(ConfigError, match=r"-r nothere\.py: no such file in .*: run the worker"
                                          r" from your project's root"):
        load_app(("nothere.py",))


def test_a_file_run_from_inside_a_package_is_named_from_there(project: Path) -> None:
    """Run from inside the package (its folder has __init__.py), an app started there knows
    jobs.py as jobs: the worker must too, not as <package>.jobs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project / "lappkg")
        patch.setattr(sys, "path", list(sys.path))
        try:
            load_app(("jobs.py",))
            assert "jobs" in sys.modules and registry.lookup("jobs.LoadAppWelcome")
        finally:
            sys.modules.pop("jobs", None)


def test_code_that_does_not_parse_is_shown_where_it_fails(project: Path) -> None:
    # Before, the worker died with a traceback through importlib's own frames.
    (project / "lappkg" / "broken.py").write_text("import os\n\ndef f(:\n    pass\n")
    with pytest.raises(ConfigError) as caught:
        load_app(("lappkg.broken",))
    path = project / "lappkg" / "broken.py"
    assert str(caught.value) == (
        f"could not import 'lappkg.broken': {path}:3: SyntaxError: invalid syntax\n"
        "    def f(:\n"
        "          ^\n"
        "Fix the code there, then start the worker again")


@pytest.mark.parametrize(("target", "words"), [
    ("", "-r was given an empty value: name the module that defines your jobs (-r app.jobs)"),
    (".", "-r .: a directory, not a module: name the module"),
    ("lappkg/", "-r lappkg/: a directory, not a module: name the module"),
])
def test_a_directory_or_nothing_is_refused_with_what_to_name(project: Path, target: str,
                                                             words: str) -> None:
    # Before: a TypeError about relative imports, a ValueError, or "no such file".
    with pytest.raises(ConfigError) as caught:
        load_app((target,))
    assert str(caught.value).startswith(words)


def test_a_package_named_as_a_module_is_still_imported(project: Path) -> None:
    load_app(("lappkg",))  # a directory of that name is there too: it is the package
    assert "lappkg" in sys.modules


def test_a_missing_module_of_the_apps_own_package_says_fix_the_import(project: Path) -> None:
    """It said to `pip install lappkg`: the app's own package, which no pip install holds."""
    (project / "lappkg" / "baddep2.py").write_text(
        "import os\nfrom lappkg.nothere import Thing\n")
    with pytest.raises(ConfigError) as caught:
        load_app(("lappkg.baddep2",))
    package = project / "lappkg"
    assert str(caught.value) == (
        f"could not import 'lappkg.baddep2': {package / 'baddep2.py'}:2: 'import"
        f" lappkg.nothere' failed: module 'lappkg.nothere' does not exist: package 'lappkg'"
        f" ({package}) has no module 'nothere'. Fix the import, or add nothere.py to the"
        " package")


def test_a_missing_module_of_a_module_says_it_is_no_package(project: Path) -> None:
    (project / "lappkg" / "baddep3.py").write_text("import lappkg.jobs.nothere\n")
    with pytest.raises(ConfigError, match=r"baddep3\.py:1: 'import lappkg\.jobs\.nothere'"
                                          r" failed: 'lappkg\.jobs' is a module, not a"
                                          r" package, so it has no module 'nothere'"):
        load_app(("lappkg.baddep3",))


def test_a_missing_module_of_an_installed_package_says_which_version(project: Path) -> None:
    (project / "lappkg" / "baddep5.py").write_text("import pytest.nothere_xyz\n")
    with pytest.raises(ConfigError, match=r"module 'pytest\.nothere_xyz' does not exist: .*"
                                          r" Fix the import, or install a version of pytest"
                                          r" that has it$"):
        load_app(("lappkg.baddep5",))


def test_an_import_error_raised_by_code_shows_where_not_where_to_run_from(
        project: Path) -> None:
    """A library that needs an extra (SQLAlchemy's asyncio without greenlet) raises a plain
    ImportError: it said to run from the project root, where the package imports fine."""
    (project / "lappkg" / "needs.py").write_text(
        "\n\nraise ImportError('the greenlet library is required')\n")
    (project / "lappkg" / "baddep4.py").write_text("import os\nimport lappkg.needs\n")
    with pytest.raises(ConfigError) as caught:
        load_app(("lappkg.baddep4",))
    assert str(caught.value) == (
        f"could not import 'lappkg.baddep4': {project / 'lappkg' / 'needs.py'}:3: ImportError:"
        " the greenlet library is required")


def test_an_import_error_raised_in_a_library_names_the_apps_line_too(
        project: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path_factory.mktemp("site-packages")
    (library / "lappextra.py").write_text("\nraise ImportError('lappextra requires greenlet')\n")
    monkeypatch.syspath_prepend(str(library))
    monkeypatch.setattr("site.getsitepackages", lambda: [str(library)])
    (project / "lappkg" / "baddep6.py").write_text("import os\n\nimport lappextra\n")
    try:
        with pytest.raises(ConfigError) as caught:
            load_app(("lappkg.baddep6",))
    finally:
        sys.modules.pop("lappextra", None)
    assert str(caught.value) == (
        f"could not import 'lappkg.baddep6': {project / 'lappkg' / 'baddep6.py'}:3 (raised"
        f" in {library / 'lappextra.py'}:2): ImportError: lappextra requires greenlet")


def test_a_name_missing_from_the_apps_own_package_shows_where(project: Path) -> None:
    (project / "lappkg" / "baddep7.py").write_text("from lappkg.jobs import Nope\n")
    with pytest.raises(ConfigError) as caught:
        load_app(("lappkg.baddep7",))
    message = str(caught.value)
    assert message.startswith(f"could not import 'lappkg.baddep7': "
                              f"{project / 'lappkg' / 'baddep7.py'}:1: ImportError: cannot"
                              " import name 'Nope' from 'lappkg.jobs'")
    assert "root directory" not in message


def test_a_worker_run_from_inside_its_package_is_told_where_to_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cd app && sidequest -r jobs` loads jobs.X while the app pushes app.jobs.X."""
    import types

    from sidequest.app_loader import inside_package

    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    jobs = types.ModuleType("jobs")
    jobs.__file__ = str(package / "jobs.py")
    monkeypatch.setitem(sys.modules, "jobs", jobs)
    loaded = [type("Report", (), {"__module__": "jobs"})]
    said = inside_package(("jobs",), str(package), loaded)
    assert said is not None
    assert "jobs your application pushes as shop.jobs.X will not be found" in said
    assert f"Run the worker from {str(tmp_path)!r} instead: sidequest -r shop.jobs (or" in said
    assert said.endswith(f"delete the stray {package / '__init__.py'})")
    assert inside_package(("shop.jobs",), str(tmp_path), loaded) is None  # from the root
    assert inside_package(("jobs",), str(tmp_path), loaded) is None  # no package here


def test_jobs_whose_names_do_not_come_from_the_folder_start_inside_a_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job with an explicit name, or one of another package that -r's module only
    imports, has the same name wherever the worker starts: nothing to refuse."""
    import types

    from sidequest.app_loader import inside_package

    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    here = types.ModuleType("jobs")
    here.__file__ = str(package / "jobs" / "__init__.py")
    monkeypatch.setitem(sys.modules, "jobs", here)
    named = type("HardWorker", (), {"__module__": "jobs", "name": "HardWorker"})
    imported = type("Report", (), {"__module__": "shoplib.jobs"})
    assert inside_package(("jobs",), str(package), [named, imported]) is None
    in_subpackage = type("Deep", (), {"__module__": "jobs.deep"})
    assert inside_package(("jobs",), str(package), [named, in_subpackage]) is not None


def test_a_job_of_a_sibling_module_the_target_imports_is_named_by_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-r jobs, whose jobs.py does `from tasks import SendWelcome` beside it: the class is
    tasks.SendWelcome here, app.tasks.SendWelcome where the application pushes it."""
    import types

    from sidequest.app_loader import inside_package

    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    sibling = types.ModuleType("lapsibling")
    sibling.__file__ = str(package / "lapsibling.py")
    monkeypatch.setitem(sys.modules, "lapsibling", sibling)
    from_sibling = type("SendWelcome", (), {"__module__": "lapsibling"})
    assert inside_package(("lapjobs2",), str(package), [from_sibling]) is not None


def test_a_package_folder_is_no_reason_to_refuse_a_module_loaded_from_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed module (site-packages, PYTHONPATH) keeps its name wherever the worker
    runs; and a folder no import can name (my-app) cannot be the application's package."""
    import types

    from sidequest.app_loader import inside_package

    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    elsewhere = types.ModuleType("lapjobs")
    elsewhere.__file__ = str(tmp_path / "site-packages" / "lapjobs.py")
    monkeypatch.setitem(sys.modules, "lapjobs", elsewhere)
    loaded = [type("Report", (), {"__module__": "lapjobs"})]
    assert inside_package(("lapjobs",), str(package), loaded) is None
    here = types.ModuleType("lapjobs")
    here.__file__ = str(package / "lapjobs.py")
    monkeypatch.setitem(sys.modules, "lapjobs", here)
    assert inside_package(("lapjobs",), str(package), loaded) is not None
    dashed = tmp_path / "my-app"
    dashed.mkdir()
    (dashed / "__init__.py").write_text("")
    here.__file__ = str(dashed / "lapjobs.py")
    assert inside_package(("lapjobs",), str(dashed), loaded) is None
