"""Task signal receivers: each writes an Event, so the tests see which process sent what."""

import os

try:
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:
    from django_tasks.signals import task_enqueued, task_finished, task_started

from django.dispatch import receiver

from shop.models import Event


def _record(kind: str, task_result) -> None:  # type: ignore[no-untyped-def]
    Event.objects.create(kind=kind, key=task_result.id,
                         value=f"{os.getpid()}:{task_result.status}")


@receiver(task_enqueued)
def enqueued(sender, task_result, **kwargs):  # type: ignore[no-untyped-def]
    _record("task_enqueued", task_result)


@receiver(task_started)
def started(sender, task_result, **kwargs):  # type: ignore[no-untyped-def]
    _record("task_started", task_result)


@receiver(task_finished)
def finished(sender, task_result, **kwargs):  # type: ignore[no-untyped-def]
    _record("task_finished", task_result)
