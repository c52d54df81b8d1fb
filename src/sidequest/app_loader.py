"""Loading the application's jobs: each ``-r`` target imported (a dotted module or a .py file),
and what to tell the user when that fails: a module not found, a class path given for a
module, a syntax error, or the module's own exception (its traceback, then one line)."""

from __future__ import annotations

import contextlib
import importlib
import os
import site
import sys
import sysconfig
import traceback
from pathlib import Path

from sidequest.errors import ConfigError


def load_app(targets: tuple[str, ...]) -> None:
    """Import each ``-r`` target: a dotted module, or a path to a .py file."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # console scripts do not include the current dir
    for target in targets:
        _check_target(target)
        is_file = target.endswith(".py") or os.sep in target
        module = _module_for_file(Path(target)) if is_file else target
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(_import_failure(target, module, exc)) from exc
        except SyntaxError as exc:  # the traceback would be importlib's frames, not the app's
            raise ConfigError(_syntax_error(target, exc)) from None
        except ConfigError:
            raise  # a job class's bad option: its own message says which and what to do
        except Exception as exc:
            if type(exc).__name__ not in ("ImproperlyConfigured", "AppRegistryNotReady"):
                raise ConfigError(_module_raised(target, exc)) from None
            # A Django project's module, imported before Django is set up.
            raise ConfigError(f"could not import {target!r}: it needs Django set up"
                              f" ({type(exc).__name__}: {exc}). Run the worker as"
                              " `python manage.py sidequest`, which sets Django up and loads"
                              " each installed app's jobs.py") from None


def _module_raised(target: str, exc: Exception) -> str:
    """The app's module raised while imported: a bug in its code, so its traceback is printed
    now (from the module's own frames: the importing ones would only hide it), and the
    ConfigError that follows says what failed in one line (exit 2, as a bad setting)."""
    tb = exc.__traceback__
    while tb is not None and _importing_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()
    return (f"could not load -r {target}: {type(exc).__name__}: {exc}"
            " (the traceback above is your module's)")


def _importing_frame(filename: str) -> bool:
    """Whether a frame is this module's or importlib's, not the app's."""
    return filename in (__file__, importlib.__file__) or filename.startswith("<frozen")


def _check_target(target: str) -> None:
    """Refuse what is neither a module name nor a file: an empty value, or a directory
    (``-r .`` loads a whole application in some job systems; here it names nothing)."""
    example = "name the module that defines your jobs (-r app.jobs) or its file (-r app/jobs.py)"
    if not target.strip():
        raise ConfigError(f"-r was given an empty value: {example}")
    if target.strip(".") == "" or (os.sep in target and Path(target).is_dir()):
        django = ("; for a Django project, run python manage.py sidequest, which loads each"
                  " installed app's jobs.py") if Path(target, "manage.py").is_file() else ""
        raise ConfigError(f"-r {target}: a directory, not a module: {example}{django}")


def _module_for_file(path: Path) -> str:
    """The dotted name under which ``-r app/jobs.py`` is imported: the same as ``-r app.jobs``,
    so that job names (``app.jobs.SendWelcome``) match what the app enqueues."""
    if not path.is_file():
        raise ConfigError(f"-r {path}: no such file")
    if path.suffix != ".py":
        raise ConfigError(f"-r {path}: not a Python file")
    resolved = path.resolve()
    # Inside a package, its top folder's parent is the project root, wherever the worker is
    # started from (run from above it, project/app/jobs.py is app.jobs, as the app pushes).
    parts: list[str] = [resolved.stem]
    folder = resolved.parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    cwd = Path.cwd().resolve()
    if len(parts) == 1 or (cwd / "__init__.py").is_file():
        # In a plain folder, or run from inside a package (an app started there names its
        # modules from there too): named from the working directory (app/jobs.py is
        # app.jobs, app a namespace package), when it lies inside it.
        with contextlib.suppress(ValueError):
            local = resolved.with_suffix("").relative_to(cwd).parts
            if local and all(part.isidentifier() for part in local):
                return ".".join(local)
    sys.path.insert(0, str(folder))
    return ".".join(parts)


def _syntax_error(target: str, exc: SyntaxError) -> str:
    """Where the app's code does not parse, shown as Python shows it: the line and a caret."""
    where = f"{exc.filename}:{exc.lineno}" if exc.lineno else str(exc.filename)
    text = (exc.text or "").rstrip("\n")
    shown = ""
    if text.strip():
        indent = len(text) - len(text.lstrip())
        caret = " " * max((exc.offset or 1) - 1 - indent, 0) + "^"
        shown = f"\n    {text.strip()}\n    {caret}"
    return (f"could not import {target!r}: {where}: {type(exc).__name__}: {exc.msg}{shown}"
            "\nFix the code there, then start the worker again")


def _import_failure(target: str, module: str, exc: ImportError) -> str:
    """Say which import failed and where: the app's own module, or a package it imports."""
    missing = exc.name or ""
    if exc.name is None or not isinstance(exc, ModuleNotFoundError):
        # The module was found and its code ran: it, or code it imports, raised this (a
        # name missing from a module, a library that needs an extra): where and what.
        return f"could not import {target!r}: {_where(exc)}{type(exc).__name__}: {exc}"
    if not (module == missing or module.startswith(missing + ".")):
        where = _where(exc)
        absent = _absent_from_package(missing)
        if absent:
            return f"could not import {target!r}: {where}'import {missing}' failed: {absent}"
        return (f"could not import {target!r}: {where}'import {missing}' failed: no module "
                f"named {missing!r} is installed in this Python ({sys.executable}). Install "
                f"it (pip install {missing.split('.')[0]}) or fix the import")
    named = _named_in_module(module)
    if named:
        return f"could not import {target!r}: {named}"
    top = module.split(".", maxsplit=1)[0]
    return (f"could not import {target!r}: {exc}. Run sidequest from your project's root"
            f" directory (where `python -c 'import {top}'` works), or set PYTHONPATH so that"
            " Python can find it")


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


def _where(exc: BaseException) -> str:
    """``file:line: `` of the app's code the exception came through: its last frame outside
    importlib, Sidequest and the installed packages (what the user can fix), and where it was
    raised when that is elsewhere (in a library the app imports). "" with no such frame."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if not _importing_frame(frame.filename)]
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


def inside_package(targets: tuple[str, ...], cwd: str | None = None) -> str | None:
    """What to say when the worker runs from inside a package (``cd app && sidequest -r
    jobs``): it loads ``jobs.SendWelcome`` while the application pushes
    ``app.jobs.SendWelcome``, a name it does not find; None when all is well."""
    here = Path(cwd or os.getcwd())
    top = [t for t in targets if "." not in t and os.sep not in t and not t.endswith(".py")]
    if not top or not (here / "__init__.py").is_file():
        return None
    dotted = ", ".join(f"-r {here.name}.{t}" for t in top)
    return (f"this directory is the package {here.name!r} (it holds __init__.py), so -r"
            f" {', -r '.join(top)} loads its jobs under names without {here.name + '.'!r}: jobs"
            f" your application pushes as {here.name}.{top[0]}.X will not be found. Run the"
            f" worker from {str(here.parent)!r} instead: sidequest {dotted}")

