"""Django's task framework: ``django.tasks`` (Django 6) or the ``django-tasks`` backport
(Django 5.2), whichever is installed; the same names either way."""

from __future__ import annotations

try:
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:
    try:
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError as exc:  # pragma: no cover - the message is the point
        raise ImportError(
            "sidequest.contrib.django.SidequestBackend needs Django's task framework: "
            "Django 6 or later, or on Django 5.2 the backport: pip install django-tasks"
        ) from exc

__all__ = ["BaseTaskBackend", "TaskContext", "TaskError", "TaskResult",
           "TaskResultDoesNotExist", "TaskResultStatus", "normalize_json", "task_enqueued",
           "task_finished", "task_started"]
