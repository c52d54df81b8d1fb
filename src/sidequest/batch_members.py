"""A job's place in batches: the ancestry its payload carries (``sq_batch``: its batch's id
and the ids of that batch's ancestors), and the commands that make a job, or a child batch, a
member of a batch before it is written. How long a batch is kept is decided here too, since
joining one renews its sets' expiry.

Apart from batch.py, which builds and fills batches, so that pushing a job (client.py) and
the testing modes' batches (batch_local.py) need not import it.
"""

from __future__ import annotations

from typing import Any

from sidequest import keys
from sidequest.batch_callbacks import PAYLOAD_KEY
from sidequest.payload import Payload
from sidequest.wire import Command

#: Seconds a batch is kept after its success, and at most from its creation.
KEEP_AFTER_SUCCESS = 3 * 86400
KEEP = 30 * 86400


def ancestry_of(payload: Payload) -> list[str] | None:
    value = payload.get(PAYLOAD_KEY)
    if isinstance(value, list) and value and all(isinstance(b, str) for b in value):
        return value
    return None


def add_member(pipe: Any, bid: str, member: str) -> None:
    """Queue on ``pipe``: ``member`` joins batch ``bid`` (before its job is written). Plain
    commands, not a script: a script's call refused for not being loaded (a restarted Redis)
    would let the job's write after it run first, and the job could end before it is a
    member. An expired batch is not joined: ``jobs()`` checks first for a job's own batch."""
    for command in member_commands(bid, member):
        pipe.execute_command(*command)


def member_commands(bid: str, member: str) -> list[Command]:
    """The commands of ``add_member``."""
    return [("SADD", keys.batch_part(bid, "pending"), member),
            ("HINCRBY", keys.batch(bid), "total", 1),
            *(("EXPIRE", keys.batch_part(bid, part), KEEP)
              for part in ("pending", "ran", "failed"))]


def member_keys(payload: Payload) -> list[str]:
    """The keys a job's push adds it to as a member of its batch (none outside a batch), for
    a push script that makes it a member only if the job is written (lua/unique_push.lua)."""
    ancestry = ancestry_of(payload)
    if not ancestry:
        return []
    bid = ancestry[0]
    return [keys.batch(bid), *(keys.batch_part(bid, part)
                               for part in ("pending", "ran", "failed"))]
