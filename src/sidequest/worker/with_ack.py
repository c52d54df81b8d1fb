"""Writes that go with a job's acknowledgement, in its transaction.

What a job's end records besides its removal from the in-progress list (its batch's count,
its stored status, its unique lock) is written in the same MULTI as that removal, through
the processor's retrying write: a Redis outage as the job ends delays them with the
acknowledgement instead of losing them (or turning the success into a failure), and a
crash before it leaves the job in progress, to run again and record them then. The server
middleware that knows what to record marks the payload; the processor writes the marks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidequest import limiter, unique
from sidequest.payload import Payload

#: One command (or several) queued on the acknowledgement's transaction.
Step = Callable[[Any], None]
#: The payload's list of steps, taken out before the payload is written anywhere: a key no
#: job writes (a crafted JSON one holds no callables, which take() keeps to).
_KEY = "\x00sq_with_ack"


def add(payload: Payload, step: Step) -> None:
    """Queue ``step`` for the job's acknowledgement (a success, or a job dropped unrun)."""
    payload.setdefault(_KEY, []).append(step)


def take(payload: Payload) -> list[Step]:
    """The steps to write with the acknowledgement, taken out of the payload (so that each
    is written once), its unique lock's release among them."""
    marked = payload.pop(_KEY, None)
    # Only what add() put there: a payload's JSON could hold the same key, but not callables.
    steps: list[Step] = ([step for step in marked if callable(step)]
                         if isinstance(marked, list) else [])
    if unique.releases_with_ack(payload):
        steps.append(lambda pipe: unique.release_in(pipe, payload))
    return steps


def discard(payload: Payload) -> None:
    """A job that failed: nothing marked for a success is written (nor kept in its retry)."""
    payload.pop(_KEY, None)
    limiter.unmark(payload)  # a run marked over limit that then failed (a late JobTimeout)
    unique.releases_with_ack(payload)
