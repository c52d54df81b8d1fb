"""Why ``-r``'s import of the application failed, said so that it can be fixed: the app's own
module, a package it imports, a module its package lacks, or a worker run from the wrong
folder; each message names the file and line to look at."""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
import shlex
import site
import sys
import sysconfig
import traceback
from pathlib import Path

#: Frames of the loader itself and of importlib: not the app's code.
_LOADER_FILES = frozenset({__file__, os.path.join(os.path.dirname(__file__), "app_loader.py"),
                           importlib.__file__})


def importing_frame(filename: str) -> bool:
    """Whether a frame is this module's or importlib's, not the app's."""
    return filename in _LOADER_FILES or filename.startswith("<frozen")


def import_failure(target: str, module: str, exc: ImportError, spec: str) -> str:
    """Say which import failed and where: the app's own module, or a package it imports."""
    missing = exc.name or ""
    if exc.name is None or not isinstance(exc, ModuleNotFoundError):
        # The module was found and its code ran: it, or code it imports, raised this (a
        # name missing from a module, a library that needs an extra): where and what.
        return (f"could not import {target!r}: {_where(exc)}{type(exc).__name__}: {exc}"
                f"{_relative_import_hint(target, spec, module, exc)}")
    above = _run_from_above(target, spec, missing)
    if above:  # before "pip install shop", which would fetch someone else's package
        where = "" if missing.partition(".")[0] == module.partition(".")[0] else _where(exc)
        return f"could not import {target!r}: {where}'import {missing}' failed: {above}"
    if not (module == missing or module.startswith(missing + ".")):
        where = _where(exc)
        absent = _absent_from_package(missing)
        if absent:
            return f"could not import {target!r}: {where}'import {missing}' failed: {absent}"
        return (f"could not import {target!r}: {where}'import {missing}' failed: no module "
                f"named {missing!r} is installed in this Python ({sys.executable}). Install "
                f"it (pip install {missing.split('.')[0]}) or fix the import")
    # A class path given to -r, or a module its (imported) package lacks: the name is
    # wrong, not where the worker runs.
    named = _named_in_module(module) or _no_such_module(missing)
    if named:
        return f"could not import {target!r}: {named}"
    top = module.split(".", maxsplit=1)[0]
    return (f"could not import {target!r}: {exc}. Run sidequest from your project's root"
            f" directory (where `python -c 'import {top}'` works), or set PYTHONPATH so that"
            " Python can find it")


def _run_from_above(target: str, spec: str, missing: str) -> str:
    """For ``cd shop && sidequest -r app``, where app.py imports ``shop.jobs``: Python finds
    the package shop from the folder that holds it, never from inside it, so the worker must
    run from there. "" unless the working directory lies in a package of the missing name."""
    top = missing.partition(".")[0]
    if top in sys.modules:
        return ""
    here = Path.cwd().resolve()
    package = here
    while (package / "__init__.py").is_file() and package.name != top:
        package = package.parent
    if package.name != top or not (package / "__init__.py").is_file():
        return ""
    root = package.parent
    return (f"the worker runs inside the package {top!r} ({package}), and Python finds a"
            f" package only from the directory that holds it. Run the worker from"
            f" {str(root)!r}: {_command_from(root, target, spec, target)}")


def _relative_import_hint(target: str, spec: str, module: str, exc: ImportError) -> str:
    """For ``cd shop && sidequest -r jobs`` where jobs.py has ``from .models import X``: the
    module is part of a package, imported without it, so its relative imports have no
    package to start from. "" for any other ImportError, or with no frame of the app's."""
    # Not "beyond top-level package": that one is a relative import climbing too high, which
    # no other directory cures.
    if "with no known parent package" not in str(exc):
        return ""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if not importing_frame(frame.filename)]
    if not frames:
        return ""
    file = Path(frames[-1].filename).resolve()
    if file.stem != module.rpartition(".")[2]:
        # Another module, imported by the target as a top-level one: the command that would
        # cure it is not known from here (running the target from above breaks that import).
        return (f". {file.name} uses a relative import but was imported as a module of no"
                f" package: import it relatively too where it is imported (from . import"
                f" {file.stem}), and name the target with its package")
    folder = file.parent
    if not (folder / "__init__.py").is_file():
        return (f". {file.name} uses a relative import, which works only in a module of a"
                f" package, and {folder} has no __init__.py: add one to make it a package,"
                f" then run the worker from the directory above it and name the module with"
                f" the package (-r {folder.name}.{file.stem})")
    parts = [file.stem]
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    return (f". {file.name} is the module {'.'.join(parts)} of the package {parts[0]!r}, and"
            f" its relative imports work only when it is imported under that name: run the"
            f" worker from the directory above the package and name the module with it:"
            f" {_command_from(folder, target, spec, '.'.join(parts))}")


def _command_from(root: Path, target: str, spec: str, named: str) -> str:
    """``cd ... && sidequest -r ...``, the command that imports ``target`` from ``root``, the
    folder that holds the package; ``-r named`` when the working directory is not inside
    it (the target's own name from there is then unknown)."""
    here = Path.cwd().resolve()
    if not here.is_relative_to(root) or here == root:
        return f"-r {shlex.quote(named)}"
    return (f"cd {shlex.quote(os.path.relpath(root, here))} && sidequest -r"
            f" {shlex.quote(_target_from(root, here, target, spec))}")


def _target_from(root: Path, here: Path, target: str, spec: str) -> str:
    """``target`` as written from ``root``, a directory above the working one ``here``."""
    factory = target[len(spec):]  # ":create_app()", if any
    if spec.endswith(".py") or os.sep in spec:
        return os.path.relpath(here / spec, root) + factory
    inner = here.relative_to(root).parts
    if spec.partition(".")[0] == inner[0]:  # already named from the root: -r shop.app
        return target
    return ".".join([*inner, spec]) + factory


def _absent_from_package(missing: str) -> str:
    """For ``a.b.c`` not found while ``a.b`` imported (the app's own package, say): that it
    has no such module, which no pip install would add. "" when ``a.b`` did not import."""
    parent, _, leaf = missing.rpartition(".")
    found = sys.modules.get(parent) if parent else None
    if found is None:
        return ""
    if not hasattr(found, "__path__"):
        return (f"{parent!r} is a module, not a package, so it has no module {leaf!r}: fix"
                " the import")
    folders = [str(folder) for folder in found.__path__]
    if folders and all(_installed(folder) for folder in folders):
        fix = f"install a version of {missing.partition('.')[0]} that has it"  # a third party's
    else:
        fix = f"add {leaf}.py to the package"
    return (f"module {missing!r} does not exist: package {parent!r} ({', '.join(folders)})"
            f" has no module {leaf!r}. Fix the import, or {fix}")


def _no_such_module(missing: str) -> str:
    """For ``-r app.jbos`` when ``app`` imported: its package has no such module, but one of
    almost that name. "" when the package did not import, or has none so close."""
    parent, _, leaf = missing.rpartition(".")
    found = sys.modules.get(parent) if parent else None
    if found is None or not hasattr(found, "__path__"):
        return ""
    names = [info.name for info in pkgutil.iter_modules(found.__path__)]
    close = difflib.get_close_matches(leaf, names, 1)
    if not close:  # maybe another copy of the package, found first: where to run from
        return ""
    folders = ", ".join(str(folder) for folder in found.__path__)
    return (f"package {parent!r} ({folders}) has no module {leaf!r}; did you mean"
            f" {parent}.{close[0]}?")


def _where(exc: BaseException) -> str:
    """``file:line: `` of the app's code the exception came through: its last frame outside
    importlib, Sidequest and the installed packages (what the user can fix), and where it was
    raised when that is elsewhere (in a library the app imports). "" with no such frame."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if not importing_frame(frame.filename)]
    if not frames:
        return ""
    own = [frame for frame in frames if not _installed(frame.filename)]
    at = (own or frames)[-1]
    raised = frames[-1]
    inside = f" (raised in {raised.filename}:{raised.lineno})" if raised is not at else ""
    return f"{at.filename}:{at.lineno}{inside}: "


def _installed(filename: str) -> bool:
    """Whether a file is Python's own or an installed package's, not the app's."""
    paths = sysconfig.get_paths()
    folders = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")
               if key in paths]
    folders += [*site.getsitepackages(), site.getusersitepackages()]
    file = Path(filename).resolve()
    return any(file.is_relative_to(Path(folder).resolve()) for folder in folders)


def _named_in_module(module: str) -> str:
    """For ``-r app.jobs.SendWelcome``, a class path: its parent module imported (the failed
    import loaded it) and defines that name. "" when ``module`` is not such a path."""
    parent, _, name = module.rpartition(".")
    found = getattr(sys.modules.get(parent), name, None) if parent else None
    if found is None:
        return ""
    kind = "class" if isinstance(found, type) else "function" if callable(found) else "name"
    return f"-r takes a module, not a {kind}: use -r {parent}"
