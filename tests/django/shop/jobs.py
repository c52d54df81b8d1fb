"""Sidequest jobs of the test shop (found by the app's jobs.py autodiscovery, no -r)."""

from asgiref.sync import sync_to_async
from django.db import connection

from shop.models import Event, Order
from sidequest import Job


class RecordOrder(Job):
    def perform(self, number: int) -> None:
        Event.objects.create(kind="order-seen", key=str(number),
                             value=str(Order.objects.filter(number=number).count()))


class NotifyOnCommit(Job):
    enqueue_on_commit = True

    def perform(self, number: int) -> None:
        Event.objects.create(kind="notified", key=str(number))


class BreakConnection(Job):
    """Leaves its thread's database connection closed behind Django's back, as a database
    restart would: the next job in this thread must get a fresh one."""

    def perform(self, key: str) -> None:
        Event.objects.create(kind="broke", key=key)
        connection.connection.close()  # the raw sqlite3 connection; Django does not know


class RecordAsync(Job):
    """An ``async def`` job using Django's async ORM on the worker's event loop."""

    async def perform(self, key: str) -> None:
        await Event.objects.acreate(kind="async", key=key, value=str(await Order.objects.acount()))


def _logged() -> int:
    return len(connection.queries_log)


class LogQueries(Job):
    """Records how many queries its thread's connection had logged when it started, and
    after running ``queries`` more (Django logs them under DEBUG = True)."""

    def perform(self, key: str, queries: int) -> None:
        before = _logged()
        for _ in range(queries):
            Order.objects.count()
        Event.objects.create(kind="queries-logged", key=key, value=f"{before},{_logged()}")


class LogQueriesAsync(Job):
    """LogQueries as an ``async def`` job: its ORM calls run, and are logged, in the thread
    Django's async ORM uses."""

    async def perform(self, key: str, queries: int) -> None:
        before = await sync_to_async(_logged)()
        for _ in range(queries):
            await Order.objects.acount()
        after = await sync_to_async(_logged)()
        await Event.objects.acreate(kind="queries-logged", key=key, value=f"{before},{after}")
