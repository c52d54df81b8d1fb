"""``JobStatus(jid)``: the state, progress and result of a job whose class stores them
(``store_result = True``)."""

from __future__ import annotations

import json
from typing import Any, cast

from sidequest import client, connection, keys, payload
from sidequest.api.lenient import as_float
from sidequest.api.stats import first_found

#: Why ``JobStatus`` refuses to read in the testing modes.
IN_TESTING = ("JobStatus reads the status a worker stores in Redis, and in testing.fake() and "
              "testing.inline() no job's status is stored (nothing is written to Redis): see "
              "a job's outcome in the test itself (drain() raises its exception; perform() "
              "on an instance returns its result), or test the status end to end against "
              "Redis with a worker, outside the testing modes")


class JobStatus:
    """A snapshot read when created. ``state`` is None when nothing is stored for the jid
    (a class that does not store results, or one whose ``result_ttl`` ran out)."""

    def __init__(self, jid: str) -> None:
        if client.pushes_are_local():  # else a ConnectionError, or a stale status, from Redis
            raise RuntimeError(IN_TESTING)
        if not isinstance(jid, str) or not jid:  # as cancel() does: no status could be found
            raise ValueError(f"JobStatus() needs a job id (jid) string, as perform_async"
                             f" returns it; got {jid!r}")
        self.jid = jid
        raw, ttl = _find(jid)
        # Fields another program wrote may not be UTF-8: read as unknown, never a crash.
        found = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                 for k, v in raw.items()}
        self.state: str | None = found.get("state")
        self.progress: float | None = as_float(found.get("progress"), None)
        self.message: str | None = found.get("message")
        self.updated_at: float | None = as_float(found.get("updated_at"), None)
        self._result = found.get("result")
        # The last failure's, while the job waits to retry or is dead (a later run that
        # succeeds leaves them in the hash: they are not its).
        failing = self.state in ("retrying", "dead")
        self.error_class: str | None = found.get("error_class") if failing else None
        self.error_message: str | None = found.get("error_message") if failing else None
        #: Seconds until the stored status and result expire (None: nothing stored).
        self.ttl: int | None = int(ttl) if isinstance(ttl, int) and ttl >= 0 else None

    @property
    def result(self) -> Any:
        """What ``perform`` returned (JSON), once the job has succeeded; None before."""
        if self._result is None:
            return None
        try:  # integers of any size, as the worker (which lifts Python's limit) stored them
            return payload.loads(self._result)
        except ValueError:  # NaN and the like, which json reads
            return json.loads(self._result)

    def __repr__(self) -> str:
        return f"JobStatus({self.jid!r}, state={self.state!r}, progress={self.progress!r})"


def _find(jid: str) -> tuple[dict[bytes, bytes], Any]:
    """The stored status of ``jid`` and its TTL, from the first shard that has one."""
    nothing: tuple[dict[bytes, bytes], Any] = ({}, -2)
    return first_found(lambda shard: _read(shard, jid), lambda answer: bool(answer[0]),
                       nothing, lambda down: _advice(jid, down))


def _read(shard: str, jid: str) -> tuple[dict[bytes, bytes], Any]:
    with connection.on_shard(shard):  # its client, and on a cluster its keys' tag
        pipe = connection.client().pipeline(transaction=False)
        pipe.hgetall(keys.status(jid))
        pipe.ttl(keys.status(jid))
        raw, ttl = pipe.execute()
    return cast(dict[bytes, bytes], raw), ttl


def _advice(jid: str, down: list[str]) -> str:
    if len(connection.shard_names()) == 1:
        return f"the status of job {jid} could not be read: try again once Redis is back"
    more = f" (shards {', '.join(map(repr, down))} are down)" if len(down) > 1 else ""
    return (f"the status of job {jid} is not on the shards that answered and may be on this "
            f"one{more}: try again once it is back")
