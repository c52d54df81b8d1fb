"""This process's in-progress list, seen from the Manager: acknowledge finished jobs, put
unfinished ones back at the front of their queues, and find jobs whose fetch reply was lost.

Every write goes through the processor's ``write`` (one MULTI, retried through an outage
until the process is stopping), so a job leaves the list only when Redis has it back in a
queue or it is done.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import redis

from sidequest import connection, keys, status
from sidequest.config import Config
from sidequest.errors import PayloadError
from sidequest.payload import Payload, decode, loads
from sidequest.worker.fetch import ACK_FROM_TAIL, Work
from sidequest.worker.logs import counted
from sidequest.worker.processor import Processor
from sidequest.worker.requeue import DEATHS_TTL, requeue_list

log = logging.getLogger("sidequest")
#: Seconds between looks for jobs whose fetch reply was lost.
RECONCILE_EVERY = 1.0


class InProgress:
    def __init__(self, config: Config, identity: str, client: redis.Redis,
                 processor: Processor) -> None:
        self.config = config
        self.identity = identity
        self.key = keys.inprogress(identity)
        self._client = client
        self._processor = processor
        #: Jobs seen in the list that no thread knew of, on the last look; None when no
        #: fetch has failed since the last clean look (then there is nothing to look for).
        self._strays: collections.Counter[bytes] | None = None
        self._next_look = 0.0

    def acknowledge(self, acks: list[bytes]) -> None:
        if not acks:
            return

        def commands(pipe: Any) -> None:
            for raw in acks:
                pipe.lrem(self.key, ACK_FROM_TAIL, raw)

        self._processor.write(commands, "acknowledge finished jobs")

    def requeue(self, works: list[Work]) -> bool:
        """Move jobs from the list back to the front of their queues (a suspect, taken
        from the quarantine, to the front of the quarantine: from its queue, any process
        would run it beside others); False when it could not (a stop through an outage:
        they stay in the list, recovered from there)."""
        if not works:
            return True
        args: list[Any] = []
        for work in works:
            args += [work.queue, work.raw]
        script = connection.script("putback")
        keys_ = [self.key, keys.QUEUES, *(keys.QUARANTINE if work.suspect
                                          else keys.queue(work.queue) for work in works)]

        def queue(pipe: Any) -> Any:
            connection.prepare(script, pipe)
            return script(keys=keys_, args=args, client=pipe)

        return self._processor.write(queue, "give fetched jobs back to their queues")

    def requeue_all(self, running: Iterable[Work] = (), retiring: bool = False) -> None:
        """Whatever is still in the list goes back to its queue (shutdown); ``running`` are
        the jobs known to be in it, whose queue is known even if their payload omits it.
        ``retiring``: the process retires over max_memory, and each job pushed back counts a
        death, as in a crash: one that brings every process it runs in over the limit ends
        in the dead set, rather than run again and again."""
        running = list(running)
        try:
            requeue_list(self._client, self.identity, "retire" if retiring else "stop",
                         max_deaths=self.config.max_deaths, deaths_ttl=DEATHS_TTL,
                         fetched_from={work.raw: work.queue for work in running})
        except redis.RedisError as exc:
            log.error("could not push unfinished jobs back (%s); the reaper of another process"
                      " will recover them when this one's lease expires", exc)
            return
        for work in running:  # a stored status said "running": it waits in its queue now
            try:
                job = decode(work.raw)
            except PayloadError:
                continue  # it went to poison, and has no status of its own
            if status.wanted(job) and self._still_running(job):
                status.save(job, "queued")

    def _still_running(self, job: Payload) -> bool:
        """Not if its thread finished meanwhile (acknowledged, its status written): pushed
        back it was not. A change between this read and the write is a window of a round
        trip, at a stop's deadline only."""
        try:
            state = self._client.hget(keys.status(str(job.get("jid", ""))), "state")
        except redis.RedisError:
            return False
        return state == b"running"

    # -- lost fetch replies --------------------------------------------------------------

    @property
    def suspicious(self) -> bool:
        """A fetch failed since the last clean look: reconcile() has something to do."""
        return self._strays is not None

    def fetch_failed(self) -> None:
        """A fetch failed: its reply may be lost with jobs already moved into the list."""
        if self._strays is None:
            self._strays = collections.Counter()

    def reconcile(self, known: Iterable[Work]) -> None:
        """After fetch errors, a fetch whose reply was lost leaves a job in the list that no
        thread knows about. Called by the fetcher after a successful fetch with the jobs
        running and those just fetched, at most once a second: a stray seen on two looks in
        a row is pushed back (a job held for a thread, in transit between threads, or an
        acknowledgement on its way, is never a stray that long: held jobs wait milliseconds,
        and the fetcher sends acknowledgements on every round)."""
        previous = self._strays
        if previous is None or time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + RECONCILE_EVERY
        try:
            stored = cast(list[bytes], self._client.lrange(self.key, 0, -1))
        except redis.RedisError as exc:
            log.warning("could not look for jobs whose fetch reply was lost: %s", exc)
            return
        strays = collections.Counter(stored) - collections.Counter(w.raw for w in known)
        orphans = strays & previous
        remaining = strays - orphans
        self._strays = remaining if remaining else None
        if orphans:
            log.warning("requeueing %s listed in progress that no thread of this process"
                        " runs (a fetch reply, or an acknowledgement, lost with Redis)",
                        counted(sum(orphans.values()), "job"))
            self.requeue([Work(queue_of(raw), raw) for raw in orphans.elements()])


def queue_of(raw: bytes) -> str:
    try:
        queue_name = loads(raw).get("queue")
    except (ValueError, AttributeError):
        queue_name = None
    return queue_name if isinstance(queue_name, str) and queue_name else "default"
