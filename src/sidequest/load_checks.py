"""Checks an integration asks the worker to make once the application is loaded: a setup
step that has to happen at load time and did not (a Flask extension made but never given
its app, say). An integration adds its check when imported; the worker runs them after its
-r imports and logs what they find. Kept apart so that the core imports no integration."""

from __future__ import annotations

from collections.abc import Callable

#: ``check(loaded)``: the modules -r named without a factory call; returns a warning or None.
LoadCheck = Callable[[list[str]], "str | None"]
_checks: list[LoadCheck] = []


def add(check: LoadCheck) -> None:
    """Have the worker run ``check`` once it has loaded the application (once, however
    often an integration's module is imported)."""
    if check not in _checks:
        _checks.append(check)


def problems(loaded: list[str]) -> list[str]:
    """What the checks found, for the worker to log."""
    return [found for check in list(_checks) if (found := check(loaded))]
