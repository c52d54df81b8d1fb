"""Django tasks (django.tasks on Django 6, the django-tasks backport on 5.2)."""

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

from shop.models import Event


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def explode(message: str) -> None:
    raise ValueError(message)


@task
async def shout(word: str) -> str:
    return word.upper()


@task(takes_context=True)
def attempt_number(context, key: str) -> int:  # type: ignore[no-untyped-def]
    Event.objects.create(kind="attempt", key=key, value=str(context.attempt))
    return context.attempt


@task(priority=80)
def urgent(key: str) -> str:
    return key


@task(queue_name="emails")
def email(key: str) -> str:
    return key


@task
def leave(code: int) -> None:
    raise SystemExit(code)  # no Exception: still a failure of the task, with its error


@task
def pair(a: int) -> object:
    return (a, a)  # a tuple: stored as the list JSON makes of it


@task
def unstorable() -> object:
    return {1, 2}  # a set: JSON cannot hold it, so the task fails, as in Django's backends


@task
async def unstorable_async() -> object:
    return object()
