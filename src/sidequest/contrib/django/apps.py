"""The app config: settings, job discovery, middleware and checks, set up once Django is."""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core import checks as django_checks
from django.utils.module_loading import autodiscover_modules

from sidequest import connection, middleware, oncommit


class SidequestConfig(AppConfig):
    name = "sidequest.contrib.django"
    label = "sidequest"
    verbose_name = "Sidequest"

    def ready(self) -> None:
        from sidequest.contrib.django import checks, conf, db  # noqa: PLC0415

        settings = conf.worker_config()  # a bad SIDEQUEST fails at startup, clearly
        if settings.redis_url or settings.shards or settings.shard_queues:
            # Pushes from the web processes go to the shard of their queue, as the worker's.
            # With the client options a configure() in settings set (socket_timeout, ...).
            connection.configure(redis_url=settings.redis_url,
                                 shards=settings.shards or None,
                                 shard_queues=settings.shard_queues or None,
                                 **connection.client_options())
        middleware.server.add(db.check_connections)
        oncommit.install(db.on_commit)
        django_checks.register(checks.settings_name)
        django_checks.register(checks.connections_for_concurrency)
        # Every app's jobs.py, so that the worker knows each job class by its name.
        autodiscover_modules("jobs")
        if _uses_backend():  # the backend's job classes, for the worker to find them
            from sidequest.contrib.django import backend  # noqa: F401, PLC0415


def _uses_backend() -> bool:
    tasks = getattr(django_settings, "TASKS", None) or {}
    return any("sidequest.contrib.django" in str(params.get("BACKEND", ""))
               for params in tasks.values() if isinstance(params, dict))
