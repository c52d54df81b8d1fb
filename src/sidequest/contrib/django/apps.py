"""The app config: settings, job discovery, middleware and checks, set up once Django is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core import checks as django_checks
from django.utils.module_loading import autodiscover_modules

from sidequest import connection, middleware, oncommit
from sidequest.errors import ConfigError


class SidequestConfig(AppConfig):
    name = "sidequest.contrib.django"
    label = "sidequest"
    verbose_name = "Sidequest"

    def ready(self) -> None:
        from sidequest.contrib.django import checks, conf, db  # noqa: PLC0415

        try:
            settings = conf.worker_config()
        except ConfigError as exc:
            # Raised here, it would reach the user as a traceback out of django.setup(),
            # with exit status 1, from every manage.py command. Kept instead: the system
            # check sidequest.E001 reports it (manage.py check, migrate, runserver), the
            # worker command prints it and exits 2, and this process's pushes and dashboard
            # raise it, so a web server (which runs no checks) still fails at its first use
            # of Sidequest rather than pushing to the default Redis.
            conf.problem = exc
            middleware.client.prepend(_refuse_push)
        else:
            conf.problem = None
            middleware.client.remove(_refuse_push)
            if settings.redis_url or settings.shards or settings.shard_queues:
                # Pushes from the web processes go to the shard of their queue, as the
                # worker's; with the client options a configure() in settings set
                # (socket_timeout, ...).
                connection.configure(redis_url=settings.redis_url,
                                     shards=settings.shards or None,
                                     shard_queues=settings.shard_queues or None,
                                     **connection.client_options())
        middleware.server.add(db.check_connections)
        oncommit.install(db.on_commit, waits=db.waits)
        django_checks.register(checks.settings_name)
        django_checks.register(checks.settings_valid)
        django_checks.register(checks.connections_for_concurrency)
        django_checks.register(checks.task_queues_served)
        django_checks.register(checks.job_queues_served)
        # Every app's jobs.py, so that the worker knows each job class by its name.
        autodiscover_modules("jobs")
        if _uses_backend():  # the backend's job classes, for the worker to find them
            from sidequest.contrib.django import backend  # noqa: F401, PLC0415


def _refuse_push(payload: dict[str, Any], queue: str, call_next: Callable[[], Any]) -> Any:
    """Client middleware while ``SIDEQUEST`` is bad: no job goes to the default Redis."""
    from sidequest.contrib.django import conf  # noqa: PLC0415 - loaded by ready()

    conf.raise_problem()
    return call_next()


def _uses_backend() -> bool:
    tasks = getattr(django_settings, "TASKS", None) or {}
    return any("sidequest.contrib.django" in str(params.get("BACKEND", ""))
               for params in tasks.values() if isinstance(params, dict))
