"""Django integration: an app for ``INSTALLED_APPS`` and a ``django.tasks`` backend.

    pip install 'sidequest[django]'        # Django 5.2 also: pip install django-tasks

    INSTALLED_APPS = [..., "sidequest.contrib.django"]
    SIDEQUEST = {"redis_url": "redis://localhost:6379/0", "concurrency": 10,
                 "queues": ["critical,3", "default"]}
    TASKS = {"default": {"BACKEND": "sidequest.contrib.django.SidequestBackend"}}

The app reads ``SIDEQUEST`` (the keys of the TOML config file, checked the same way),
imports every installed app's ``jobs.py``, runs each job with Django's database connections
checked before and after it (as Django does around a request), writes ``enqueue_on_commit``
jobs when the transaction commits, and adds ``python manage.py sidequest`` (the worker, with
the ``sidequest`` command's flags) and system checks: of ``SIDEQUEST`` itself (an error
there is a check error, not a traceback at startup), of the database connections against
the worker's concurrency, of a ``SIDEQUEST`` setting set under another name, and of task
queues no worker serves.
``sidequest.contrib.django.urls`` serves the dashboard to staff.
"""

from __future__ import annotations

from typing import Any

# Checked here, where every module of the integration (the app, the backend, the urls, the
# management command) is imported through, so that each says which extra to install instead
# of a bare "No module named 'django'". Only the top-level package: importing it does not
# touch the settings, which Django has not read yet when it imports this app.
try:
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - the message is the point
    # name="django": a worker whose -r module fails here says what is missing, not "run
    # from your project's root".
    raise ImportError("sidequest.contrib.django needs Django: pip install 'sidequest[django]'",
                      name="django") from exc


def __getattr__(name: str) -> Any:
    # Loaded on use: Django imports this package for INSTALLED_APPS before its settings are
    # ready, and the backend needs django.tasks (or the django-tasks backport).
    if name == "SidequestBackend":
        from sidequest.contrib.django.backend import SidequestBackend  # noqa: PLC0415

        return SidequestBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
