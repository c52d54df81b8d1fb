"""Loading the application's jobs: each ``-r`` target imported (a dotted module or a .py file,
optionally followed by ``:create_app()``, an app factory to call), and what to tell the user
when that fails: a module not found, a class path given for a module, a syntax error, or the
module's own exception (its traceback, then one line)."""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import inspect
import os
import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sidequest import registry
from sidequest.app_failures import import_failure, importing_frame
from sidequest.errors import ConfigError

#: ``module:factory()`` (Flask's and gunicorn's way to name an app factory): the module or
#: file, then what follows the first colon that starts a name (a Windows drive's ``C:\``
#: does not).
FACTORY = re.compile(r"(?P<module>[^:]+):(?P<expr>[A-Za-z_].*)")
#: The names Flask looks for when told only a module: an app factory the worker may not call.
FACTORY_NAMES = ("create_app", "make_app")
#: What the factories returned (the apps), held for the life of the worker.
_made: list[Any] = []
_MISSING = object()


def load_app(targets: tuple[str, ...]) -> list[str]:
    """Import each ``-r`` target: a dotted module, or a path to a .py file, and call the app
    factory a ``:create_app()`` after it names. Returns the names of the modules given
    without a factory (for factory_hint)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # console scripts do not include the current dir
    loaded: list[str] = []
    for target in targets:
        spec, expr = _split_factory(target)
        _check_target(spec)
        is_file = spec.endswith(".py") or os.sep in spec
        module = _module_for_file(Path(spec)) if is_file else spec
        _import(target, module, spec)
        if expr is None:
            loaded.append(module)
        else:
            _call_factory(target, module, expr)
    return loaded


def _split_factory(target: str) -> tuple[str, str | None]:
    """``myapp:create_app()`` as (``myapp``, ``create_app()``); a plain target, (it, None)."""
    found = FACTORY.fullmatch(target)
    if found is None or Path(target).is_file():  # a file whose path holds a colon
        return target, None
    return found["module"], found["expr"]


def _import(target: str, module: str, spec: str) -> None:
    """Import ``module``; a failure is a ConfigError that says what to do."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(import_failure(target, module, exc, spec)) from exc
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


def _module_raised(target: str, exc: Exception, whose: str = "your module's") -> str:
    """The app's module (or its factory) raised: a bug in its code, so its traceback is
    printed now (from the app's own frames: the importing ones would only hide it), and the
    ConfigError that follows says what failed in one line (exit 2, as a bad setting)."""
    tb = exc.__traceback__
    while tb is not None and importing_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()
    return (f"could not load -r {target}: {type(exc).__name__}: {exc}"
            f" (the traceback above is {whose})")


def _call_factory(target: str, module: str, expr: str) -> None:
    """``-r myapp:create_app()``: call the factory, so that the app is made as the web
    process makes it (its extensions set up, its blueprints' modules and their jobs
    imported). ``-r myapp:app`` names what the import made: a function is called, as Flask's
    ``--app`` does; anything else only has to be there."""
    name, args, kwargs, called = _parse_factory(target, expr)
    found = getattr(sys.modules[module], name, _MISSING)
    if found is _MISSING:
        raise ConfigError(f"-r {target}: module {module!r} has no attribute {name!r}"
                          f"{_close_names(sys.modules[module], name)}")
    if not called and not inspect.isfunction(found):
        return
    if not callable(found):
        raise ConfigError(f"-r {target}: {module}.{name} cannot be called (its type is"
                          f" {type(found).__name__}): use -r {module}:{name} (without the"
                          " brackets)")
    _check_arguments(target, found, args, kwargs)
    try:
        _made.append(found(*args, **kwargs))
    except ConfigError:
        raise  # a setting the app gives Sidequest (Sidequest(app)): its own message says it
    except Exception as exc:
        raise ConfigError(_module_raised(target, exc, "your factory's")) from None


def _parse_factory(target: str, expr: str) -> tuple[str, list[Any], dict[str, Any], bool]:
    """What follows the colon: a name, or a call of one with literal arguments
    (``create_app('production')``), as Flask's ``--app`` takes it."""
    example = ("after the colon, name the app factory and call it: -r 'myapp:create_app()'"
               " (arguments must be literals: create_app('production'))")
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise ConfigError(f"-r {target}: {example}") from None
    if isinstance(node, ast.Name):
        return node.id, [], {}, False
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ConfigError(f"-r {target}: {example}")
    try:
        args = [ast.literal_eval(arg) for arg in node.args]
        kwargs = {str(kw.arg): ast.literal_eval(kw.value) for kw in node.keywords}
    except ValueError:
        raise ConfigError(f"-r {target}: {example}") from None
    if any(kw.arg is None for kw in node.keywords):  # **options: not a literal either
        raise ConfigError(f"-r {target}: {example}")
    return node.func.id, args, kwargs, True


def _check_arguments(target: str, factory: Any, args: list[Any],
                     kwargs: dict[str, Any]) -> None:
    """Arguments the factory does not take: said as such, not as a traceback of this call."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without one: the call will say
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"-r {target}: {exc}; it is {factory.__name__}{signature}: give its"
                          f" arguments as literals, e.g. -r 'module:create_app(\"production\")'"
                          ) from None


def _close_names(module: Any, name: str) -> str:
    functions = [attr for attr in dir(module) if callable(getattr(module, attr, None))
                 and not attr.startswith("_")]
    close = difflib.get_close_matches(name, functions, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def factory_hint(modules: list[str]) -> str:
    """For the warning that no job class is loaded: a module given to -r that defines an app
    factory the worker did not call (``create_app``), so its app and the jobs its blueprints
    import were never made. "" when there is none."""
    for module in modules:
        for name in FACTORY_NAMES:
            if inspect.isfunction(getattr(sys.modules.get(module), name, None)):
                return (f"; {module} defines {name}() but nothing calls it: to make the app"
                        f" (and import the jobs it imports), pass -r '{module}:{name}()'")
    return ""


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
    call = re.fullmatch(r"([\w.]+)\.(\w+\(.*\))", target.strip())
    if call is not None:  # shop.create_app(): the factory joined with a dot, not a colon
        raise ConfigError(f"-r {target}: an app factory follows the module after a colon:"
                          f" -r '{call[1]}:{call[2]}'")


def _module_for_file(path: Path) -> str:
    """The dotted name under which ``-r app/jobs.py`` is imported: the same as ``-r app.jobs``,
    so that job names (``app.jobs.SendWelcome``) match what the app enqueues."""
    if not path.is_file():
        raise ConfigError(f"-r {path}: no such file in {Path.cwd()}: run the worker from your"
                          f" project's root, or give the file's path from there")
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


def _named_by_folder(cls: type, here: Path) -> bool:
    """Whether a job's name comes from a module imported under a top-level name from the
    folder ``here`` (``jobs.X``, ``jobs.sub.X`` in a package ``jobs``, or ``tasks.X`` that
    -r's module imports from beside it), rather than from ``name``."""
    top = cls.__module__.split(".")[0]
    return not vars(cls).get("name") and top in sys.modules and _from_dir(top, here)


def _from_dir(target: str, here: Path) -> bool:
    """Whether ``target`` was imported from the folder ``here`` (true if not loaded yet)."""
    module = sys.modules.get(target)
    where = getattr(module, "__file__", None)
    if module is None or where is None:
        return module is None
    return Path(where).resolve().parent == here.resolve() or (
        Path(where).name == "__init__.py" and Path(where).resolve().parent.parent
        == here.resolve())


def inside_package(targets: tuple[str, ...], cwd: str | None = None,
                   jobs: Iterable[type] | None = None) -> str | None:
    """What to say when the worker runs from inside a package (``cd app && sidequest -r
    jobs``): it loads ``jobs.SendWelcome`` while the application pushes
    ``app.jobs.SendWelcome``, a name it does not find; None when all is well. ``jobs``: the
    job classes loaded (the registry's by default)."""
    here = Path(cwd or os.getcwd())
    top = [t for t in targets if "." not in t and os.sep not in t and not t.endswith(".py")
           and _from_dir(t, here)]
    if not top or not (here / "__init__.py").is_file() or not here.name.isidentifier():
        # Not a package's module (one installed, or on PYTHONPATH), or a folder no import
        # can name (my-app): the application cannot push its jobs under another name.
        return None
    if not any(_named_by_folder(cls, here) for cls in
               (registry.all_jobs() if jobs is None else jobs)):
        # Every job loaded keeps its name wherever the worker runs: an explicit name = ...,
        # or a class of another package that the module only imports.
        return None
    dotted = ", ".join(f"-r {here.name}.{t}" for t in top)
    return (f"this directory is the package {here.name!r} (it holds __init__.py), so -r"
            f" {', -r '.join(top)} loads its jobs under names without {here.name + '.'!r}: jobs"
            f" your application pushes as {here.name}.{top[0]}.X will not be found. Run the"
            f" worker from {str(here.parent)!r} instead: sidequest {dotted} (or, if your"
            f" application imports {top[0]} without {here.name + '.'!r}, delete the stray"
            f" {here / '__init__.py'})")

