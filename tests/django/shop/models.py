from django.db import models


class Order(models.Model):
    number = models.IntegerField()


class Event(models.Model):
    """What jobs and signal receivers saw, written to the database the tests read."""

    kind = models.CharField(max_length=40)
    key = models.CharField(max_length=100)
    value = models.TextField(default="")
