"""Found by the sidequest app in every installed app's jobs.py: no -r needed."""

from orders.models import Order
from sidequest import Job


class SendReceipt(Job):
    enqueue_on_commit = True  # pushed when the order's transaction commits

    def perform(self, order_id: int) -> None:
        order = Order.objects.get(pk=order_id)  # committed: the worker can see it
        print(f"receipt sent to {order.email}")
        order.receipt_sent = True
        order.save(update_fields=["receipt_sent"])
