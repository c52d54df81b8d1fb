"""One name, one limiter: every kind keeps its state under ``sq:limiter:<name>`` (the
dashboard reads it there), so two limiters of one name would share a key. A bucket's hash
under a concurrent limiter's name made Redis answer WRONGTYPE; a window counted a
concurrent limiter's holders as its calls; two buckets with different limits shared one
count. Here the same name defined again in this process with another kind or other limits
is refused when it is made, naming both definitions; and another process's limiter of
another kind, found as WRONGTYPE when this one is used, is explained.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sidequest.limiter import Limiter

# Weak: a limiter made per call (``limiter.bucket(f"user-{uid}", ...)``) is forgotten with
# its last use, so a million per-user names cost no memory; one made at import lives on.
_defined: weakref.WeakValueDictionary[str, Limiter] = weakref.WeakValueDictionary()
_lock = threading.Lock()

#: What each Redis type under a limiter's key is the state of (limiter_*.lua).
_KIND_OF_TYPE = {"hash": "a bucket limiter", "zset": "a concurrent or window limiter"}


class LimiterConflict(ValueError):
    """Two limiters of different kinds or limits were given the same name."""


def site() -> str:
    """Where the application made a limiter: the first caller outside these modules."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
            "sidequest.limiter"):
        frame = frame.f_back
    return "an unknown place" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def register(made: Limiter) -> None:
    """Remember ``made`` under its name; refuse it if a live limiter of that name differs in
    kind, limit or interval (``wait_timeout`` may differ: it is how long a caller waits)."""
    with _lock:
        earlier = _defined.get(made.name)
        if earlier is None:
            _defined[made.name] = made
            return
        if earlier.definition == made.definition:
            return  # the same limiter made again (per call, or in two modules): fine
    raise LimiterConflict(
        f"limiter {made.name!r} is defined twice with different settings: "
        f"{earlier.definition} at {earlier.defined_at}, and {made.definition} at "
        f"{made.defined_at}. Both would share one state in Redis: give each its own name, or "
        f"define it once and import it")


def other_kind(made: Limiter, client: Any) -> LimiterConflict:
    """The error for a WRONGTYPE answer: the key holds another kind's state, written by a
    limiter of the same name in another process."""
    found = client.type(made.key)
    found = found.decode() if isinstance(found, bytes) else str(found)
    # "none": the other state expired in between; still a conflict, of an unknown kind.
    holder = _KIND_OF_TYPE.get(found, "another kind of limiter")
    return LimiterConflict(
        f"limiter {made.name!r} ({made.definition}, {made.defined_at}): its Redis key "
        f"{made.key} holds the state of {holder} of the same name, used by another process. "
        f"One name is one limiter: rename one of them (the old state expires once idle), or "
        f"define the limiter once and import it everywhere")
