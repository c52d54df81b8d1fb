try:
    from django.tasks import task  # Django 6
except ImportError:
    from django_tasks import task  # Django 5.2: pip install django-tasks

from orders.models import Order


@task(priority=60)  # 60 >= 50: the critical queue (settings.TASKS PRIORITY_QUEUES)
def count_orders() -> int:
    return Order.objects.count()
