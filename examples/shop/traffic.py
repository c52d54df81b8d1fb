"""Play customers: enqueue a mix of the shop's jobs every second and print what was enqueued.

``sidequest dev`` runs this in a thread; alone it is ``python -m examples.shop.traffic``
(set REDIS_URL if Redis is not on localhost:6379).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading

from examples.shop.jobs import ChargeCard, ResizeImage, warm_cache
from sidequest import RedisUnavailable

PAGES = ("/", "/shoes", "/hats", "/sale")
SIZES = (64, 128, 256, 512, 1024)


class Customers:
    """Enqueues one job at a time: mostly orders, some image uploads, a few page edits."""

    def __init__(self) -> None:
        self.orders = itertools.count(1001)
        self.images = itertools.count(501)
        self.pages = itertools.cycle(PAGES)

    def act(self) -> str:
        """Enqueue one job; returns what was enqueued, as a call."""
        kind = random.choices(("order", "image", "page"), weights=(3, 2, 1))[0]
        if kind == "order":
            order_id, cents = next(self.orders), random.randrange(500, 20_000)
            ChargeCard.perform_async(order_id, cents)
            return f"ChargeCard({order_id}, {cents})"
        if kind == "image":
            image_id, sizes = next(self.images), sorted(random.sample(SIZES, 2))
            ResizeImage.perform_async(image_id, sizes)
            return f"ResizeImage({image_id}, {sizes})"
        page = next(self.pages)
        warm_cache.perform_async(page)
        return f"warm_cache({page!r})"


def run(stop_event: threading.Event, rate: int = 3) -> None:
    """Until ``stop_event`` is set, enqueue ``rate`` jobs every second and print them."""
    customers = Customers()
    while not stop_event.is_set():
        try:
            done = [customers.act() for _ in range(rate)]
            print(f"traffic: enqueued {', '.join(done)}", flush=True)
        except RedisUnavailable as exc:
            print(f"traffic: {exc}", flush=True)
        stop_event.wait(1.0)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        run(threading.Event())
