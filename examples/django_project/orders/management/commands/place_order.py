"""``python manage.py place_order EMAIL``: what a view would do when an order is placed."""

from django.core.management.base import BaseCommand
from django.db import transaction

from orders.jobs import SendReceipt
from orders.models import Order
from orders.tasks import count_orders


class Command(BaseCommand):
    help = "Place an order: its receipt job is pushed when the transaction commits."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("email")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            order = Order.objects.create(email=options["email"])
            SendReceipt.perform_async(order.pk)  # waits for the commit
        result = count_orders.enqueue()
        self.stdout.write(f"order {order.pk} placed; count_orders result id {result.id}")
