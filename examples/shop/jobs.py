"""The shop's background jobs, on the queues ``critical``, ``default`` and ``low``.

Every job prints a line starting with ``shop:`` so that you can watch the worker run them.
"""

from __future__ import annotations

import random
import time
from typing import Any

from sidequest import Job, job

#: Orders whose id ends in 0 have an expired card: they fail every retry and end up dead.
EXPIRED_CARD_EVERY = 10
#: The share of other charges that hit a (simulated) payment gateway timeout.
GATEWAY_FLAKINESS = 0.25


class PaymentDeclined(Exception):
    """The card was refused."""


def say(text: str) -> None:
    print(f"shop: {text}", flush=True)


class ChargeCard(Job):
    """Charge an order's card; on success, send the receipt and ask for a review later."""

    queue = "critical"
    retry = 3

    def perform(self, order_id: int, cents: int) -> None:
        if order_id % EXPIRED_CARD_EVERY == 0:
            raise PaymentDeclined(f"the card for order {order_id} has expired")
        if random.random() < GATEWAY_FLAKINESS:
            raise TimeoutError(f"payment gateway timed out charging order {order_id}")
        say(f"charged {cents / 100:.2f} for order {order_id}")
        SendReceipt.perform_async(order_id)
        ask_for_review.perform_in(10, order_id)

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: dict[str, Any]) -> float:
        # A demo should not make you wait for Sidekiq's backoff (15 s, 16 s, 31 s, ...).
        return 2.0

    @classmethod
    def retries_exhausted(cls, payload: dict[str, Any], exc: BaseException) -> None:
        say(f"gave up charging order {payload['args'][0]}: {exc}; the job is in the dead set")


class SendReceipt(Job):
    """Email the receipt (here: print a line)."""

    def perform(self, order_id: int) -> None:
        say(f"emailed the receipt for order {order_id}")


class ResizeImage(Job):
    """Make thumbnails of an uploaded product image (here: sleep a little)."""

    def perform(self, image_id: int, sizes: list[int]) -> None:
        started = time.monotonic()
        time.sleep(random.uniform(0.05, 0.2))
        sizes_text = ", ".join(f"{size}px" for size in sizes)
        elapsed = time.monotonic() - started
        say(f"resized image {image_id} to {sizes_text} in {elapsed:.2f}s")


@job(queue="low")
def ask_for_review(order_id: int) -> None:
    """Scheduled by ChargeCard ten seconds after a successful charge."""
    say(f"asked the customer of order {order_id} for a review")


@job(queue="low")
def warm_cache(page: str) -> None:
    say(f"warmed the cache of page {page}")
