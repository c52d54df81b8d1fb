"""Which shard the code running now works on.

A process has a home shard (a worker process serves one; everything else starts on the
default shard), and a block of code may choose another for its thread or task
(``connection.on_shard``: a dashboard request, a push to the shard of its queue). connection.py
picks the Redis client by it, and keys.py, on a Redis Cluster, the hash tag of the names.
Kept apart from both so that each can read it without importing the other.
"""

from __future__ import annotations

import contextvars

DEFAULT = "default"

#: The shard of this process (connection.use_shard sets it).
home = DEFAULT
#: The shard a block chose, for its thread or task only; None: the home shard.
chosen: contextvars.ContextVar[str | None] = contextvars.ContextVar("sidequest_shard",
                                                                    default=None)


def current() -> str:
    return chosen.get() or home
