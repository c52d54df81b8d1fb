"""Freeing the concurrent-limiter slots of a worker process known to be dead (a -P child its
supervisor saw exit), at once: its jobs are recovered and will want slots again, and those it
held would otherwise stay taken until their lock timeout (the process that held them renews
them no more). A process whose lease merely lapsed is not known dead, and keeps them."""

from __future__ import annotations

import logging
from typing import Any, cast

import redis

from sidequest import connection, keys, limiter, limiter_renewal

log = logging.getLogger("sidequest")


def free_slots_of(dead: str) -> int:
    """Remove the slots whose tokens name the process ``dead`` from every concurrent limiter
    used in the last hour; how many. A Redis error is logged: the slots lapse all the same."""
    client = connection.client_for(limiter.LIMITER_SHARD)
    try:
        members = cast(list[bytes], client.zrange(keys.LIMITERS, 0, -1))
        names = [parts[3] for member in members
                 if len(parts := member.decode("utf-8", "replace").split("|", 3)) == 4
                 and parts[0] == "concurrent"]
        if not names:
            return 0
        pipe: Any = client.pipeline(transaction=False)
        for name in names:
            pipe.zrange(keys.limiter(name), 0, -1)
        held = pipe.execute()
        pipe = client.pipeline(transaction=False)
        freed = 0
        for name, tokens in zip(names, held, strict=True):
            gone = [t for t in tokens or () if limiter_renewal.token_owner(_text(t)) == dead]
            if gone:
                pipe.zrem(keys.limiter(name), *gone)
                freed += len(gone)
        if freed:
            pipe.execute()
            log.warning("freed %d concurrent limiter slot%s of dead process %s", freed,
                        "" if freed == 1 else "s", dead)
        return freed
    except redis.RedisError as exc:
        log.warning("could not free the limiter slots of dead process %s now (%s); they"
                    " lapse at their lock timeout", dead, exc)
        return 0


def _text(token: bytes | str) -> str:
    return token.decode("utf-8", "replace") if isinstance(token, bytes) else token
