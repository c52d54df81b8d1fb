"""Sidekiq's sorted sets: ``schedule``, ``retry`` and ``dead``, read in pages and acted on
one entry at a time, each move atomic (it cannot be lost or doubled by a racing process)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sidequest import connection, keys, morgue, status, unique
from sidequest.api import bulk, refs, removed
from sidequest.api.lenient import as_int, or_empty, replies
from sidequest.api.queues import digest_of
from sidequest.api.records import JobRecord
from sidequest.morgue import add_dead
from sidequest.options import MAX_UNIQUE_FOR
from sidequest.payload import Payload, dumps, normalized, now

PAGE = 100
#: Entries a search reads per ZSCAN call.
SEARCH_STEP = 50
_scanner: dict[str, Any] = {}


def _scan_client() -> Any:
    """A client of its own for searches that resends a command on a dead connection (Redis
    restarted) but never after a timeout: a scan that timed out is not sent again. One per
    Redis URL, so a reconfigured process searches the Redis it now uses."""
    url = connection.url()
    if url not in _scanner:
        _scanner.clear()
        _scanner[url] = connection.new_client(
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
    return _scanner[url]


class SortedEntry(JobRecord):
    """A job in a sorted set, with its score (run-at, next retry, or time of death)."""

    def __init__(self, parent: JobSet, raw: bytes, score: float) -> None:
        super().__init__(raw)
        self.parent = parent
        self.score = score

    @property
    def at(self) -> float:
        return self.score

    @property
    def id(self) -> str:
        """``<score>-<jid>``, the key Sidekiq's web UI uses for a row. Several entries can
        share it (unreadable payloads moved in one step have the same time and no jid):
        ``ref`` names this one alone."""
        return f"{self.score!r}-{self.jid}"

    @property
    def digest(self) -> str:
        """A short fingerprint of the stored entry (``queues.digest_of``)."""
        return digest_of(self.raw)

    @property
    def ref(self) -> str:
        """``<score>~<digest>-<jid>``: this very entry, whatever others share its score and
        jid; ``JobSet.entry(*refs.parse_ref(ref))`` finds it again."""
        return refs.ref_of(self.score, self.digest, self.jid)

    def delete(self) -> bool:
        deleted = bool(connection.client().zrem(self.parent.name, self.raw))
        if not deleted:
            return False
        if self.parent.key_name == "DEAD":
            unique.release_raw(self.raw)  # its status and batch heard of its death already
        else:
            removed.never_runs(self.item)  # a scheduled or retrying job (cancel)
        return True

    def add_to_queue(self) -> bool:
        """Move the job to its queue now, unchanged but for a fresh ``enqueued_at``."""
        return self.parent.move_to_queue(self, decrement=False)

    def retry(self) -> bool:
        """Run the job again now; retry_count goes down by one so this try is not counted.
        False when it is gone already, or, from Dead, when an identical unique job holds its
        lock (it stays; ``JobSet.held`` counts those)."""
        return self.parent.move_to_queue(self, decrement=True)

    def kill(self) -> bool:
        """Move the job to the dead set."""
        killed = self.parent.move_to_dead(self)
        if killed:
            removed.killed(self.item)
        return killed


class JobSet:
    """Common reading and acting for the three sorted sets."""

    #: The attribute of sidequest.keys naming this set, read at each use: a set made at
    #: import, before the first Redis client chose Redis Cluster's tagged names, must not
    #: keep Sidekiq's.
    key_name = ""

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self._move = connection.script("move")
        #: Dead jobs this object's moves to a queue left in the set (since its last bulk
        #: move): unique jobs whose lock an identical job holds, which they would run beside.
        self.held = 0
        #: The dead set's limits read once for a whole-set Kill (``kill_all``), which queues
        #: a move per entry on a pipeline; None: each move reads them.
        self._dead_limits: tuple[int, float] | None = None

    @property
    def name(self) -> str:
        """The sorted set's Redis key."""
        return self._name if self._name is not None else str(getattr(keys, self.key_name, ""))

    @property
    def size(self) -> int:
        return int(connection.client().zcard(self.name))

    def __len__(self) -> int:
        return self.size

    def page(self, page: int = 1, count: int = 25, newest_first: bool = False) -> list[SortedEntry]:
        """One page (1-based) of entries, lowest score first unless ``newest_first``."""
        return self.counted_page(page, count, newest_first)[0]

    def counted_page(
        self, page: int = 1, count: int = 25, newest_first: bool = False
    ) -> tuple[list[SortedEntry], int]:
        """One page and the set's size, in one round trip (a page past the end is empty)."""
        page, count = max(1, page), max(1, min(count, 1000))
        start = (page - 1) * count
        pipe = connection.client().pipeline(transaction=False)
        pipe.zcard(self.name)
        pipe.zrange(self.name, start, start + count - 1, desc=newest_first, withscores=True)
        size, rows = replies(pipe)  # a key of the wrong type reads as empty
        return [SortedEntry(self, raw, score) for raw, score in rows or ()], as_int(size)

    def each(self, newest_first: bool = True) -> Iterator[SortedEntry]:
        """Every entry, read a page at a time."""
        page = 1
        while True:
            rows = self.page(page, PAGE, newest_first)
            yield from rows
            if len(rows) < PAGE:
                return
            page += 1

    def __iter__(self) -> Iterator[SortedEntry]:
        return self.each()

    def scan(self, substring: str, limit: int = 1000) -> list[SortedEntry]:
        """Entries whose JSON contains ``substring`` (up to ``limit``), read a slice at a time."""
        found: list[SortedEntry] = []
        cursor = 0
        while True:
            cursor, batch = self._matching(substring, cursor)
            found += batch
            if not cursor or len(found) >= limit:
                return found[:limit]

    def search(
        self, substring: str, cursor: int = 0, limit: int = 25, budget: float = 0.1
    ) -> tuple[list[SortedEntry], int]:
        """Entries whose JSON contains ``substring``, from ZSCAN position ``cursor`` on, until
        ``limit`` are found or ``budget`` seconds are spent; returns them (lowest score first)
        with the cursor to continue from, 0 when the whole set was scanned. A search over a
        large set that matches little thus costs a bounded time per call, not one long scan.
        """
        deadline = time.monotonic() + budget
        found: list[SortedEntry] = []
        while True:
            cursor, batch = self._matching(substring, cursor)
            found += batch
            if not cursor or len(found) >= limit or time.monotonic() >= deadline:
                found.sort(key=lambda entry: entry.score)
                return found, int(cursor)

    def _matching(self, substring: str, cursor: int) -> tuple[int, list[SortedEntry]]:
        """One small ZSCAN step and its entries that contain ``substring``.

        The matching is done here, not with ZSCAN's MATCH: Redis's glob costs the entry's size
        times the pattern's, inside Redis, so a long pattern over a few huge entries would block
        Redis (every worker with it) for seconds. A step reads a few entries, so Redis is
        busy for microseconds per call, and the client used is not retried on a timeout.
        """
        needle = substring.encode("utf-8", "surrogatepass")
        # A key of the wrong type (another program's) reads as an empty set, searched at once.
        cursor, rows = cast(Any, or_empty(
            lambda: _scan_client().zscan(self.name, cursor, count=SEARCH_STEP), (0, [])))
        return int(cursor), [SortedEntry(self, raw, score) for raw, score in rows
                             if needle in raw]

    def find_job(self, jid: str) -> SortedEntry | None:
        return or_empty(lambda: self._find_job(jid), None)

    def _find_job(self, jid: str) -> SortedEntry | None:
        # Match the jid anywhere (JSON spacing varies between writers), then check the field.
        pattern = "*" + _glob_escape(jid) + "*"
        for raw, score in connection.client().zscan_iter(self.name, match=pattern, count=PAGE):
            entry = SortedEntry(self, raw, score)
            if entry.jid == jid:
                return entry
        return None

    def fetch(self, score: float, jid: str | None = None) -> list[SortedEntry]:
        """Entries with exactly this score (and jid, if given), every one of them: several
        can share both (``entry`` picks one)."""
        if math.isnan(score):
            return []  # no member has it; Redis would refuse the range
        bound = repr(score) if math.isfinite(score) else ("+inf" if score > 0 else "-inf")
        rows: Any = or_empty(lambda: connection.client().zrange(
            self.name, bound, bound, byscore=True, withscores=True), cast(Any, []))
        entries = [SortedEntry(self, raw, s) for raw, s in rows]
        return [e for e in entries if jid is None or e.jid == jid]

    def entry(self, score: float, jid: str, digest: str | None = None) -> SortedEntry | None:
        """The one entry a page's row names: with ``digest`` (from ``ref``), the entry with
        that score, jid and fingerprint; without (a Sidekiq-style ``<score>-<jid>`` key), the
        first with that score and jid, as Sidekiq's Web UI takes it. None when it is gone."""
        found = self.fetch(score, jid)
        if digest is not None:
            found = [entry for entry in found if entry.digest == digest]
        return found[0] if found else None

    def delete(self, score: float, jid: str) -> int:
        """Delete the first entry with this score and jid, as Sidekiq's ``delete_by_jid``
        does: 1, or 0 when there is none. Others sharing both (one job scheduled twice with
        other arguments) stay; ``SortedEntry.delete`` removes a given one."""
        return next((1 for entry in self.fetch(score, jid) if entry.delete()), 0)

    def clear(self) -> int:
        """Delete every entry; returns how many there were. The schedule's and the retry
        set's jobs then never run: that is recorded for each (its batch, status and unique
        identity), read from where the set was renamed aside, as for a cleared queue."""
        if self.key_name not in ("SCHEDULE", "RETRY"):
            pipe = connection.client().pipeline(transaction=False)  # (a cluster's too)
            pipe.zcard(self.name)
            pipe.unlink(self.name)
            return as_int(replies(pipe)[0])
        held = removed.set_aside(self.name, self.key_name.lower())
        if held is None:
            return 0
        client, start = connection.client(), 0
        while rows := cast(list[bytes], client.zrange(held, start, start + PAGE * 10 - 1)):
            removed.never_run(rows, held)
            start += len(rows)
        client.unlink(held)
        return start

    def move_to_queue(self, entry: SortedEntry, decrement: bool) -> bool:
        return self._move_now(entry, "retry" if decrement else "queue")

    def move_to_dead(self, entry: SortedEntry) -> bool:
        return self._move_now(entry, "dead")

    def _move_now(self, entry: SortedEntry, how: str) -> bool:
        client = connection.client()
        self._forget_cancels(client, [entry], how)
        moved = self._queue_move(client, entry, how)
        return bool(self._counted(moved) and self._move_result(client))

    def _forget_cancels(self, client: Any, entries: list[SortedEntry], how: str) -> None:
        """A dead job sent to its queue by hand is to run: a cancel() that found it dead
        (and so removed nothing) must not drop it unrun when a worker fetches it. First, so
        that no worker can take it while the mark still stands."""
        jids = [entry.jid for entry in entries if entry.jid]
        if self.key_name == "DEAD" and how != "dead" and jids:
            client.zrem(keys.CANCELLED, *jids)

    def _counted(self, result: Any) -> bool:
        """Whether the move script moved the entry; counts those it left where they were
        because an identical unique job holds the lock (``held``)."""
        if result == -1:
            self.held += 1
        return bool(result) and result != -1

    @staticmethod
    def _move_result(client: Any) -> Any:
        return client.execute() if hasattr(client, "execute") else True

    def _queue_move(self, client: Any, entry: SortedEntry, how: str) -> Any:
        """Run (or, on a pipeline, queue) the atomic move of ``entry``: "retry" (to its
        queue, retry_count - 1), "queue" (to its queue as is) or "dead". Returns None for
        an entry that cannot go to a queue (an unreadable payload: kill or delete it)."""
        body: bytes | str
        if how == "dead":
            # The stored bytes: an unreadable payload is kept byte for byte.
            where, body, queue = "dead", entry.raw, ""
        else:
            if not entry.item:
                return None
            # A copy, with what Sidekiq's Client.push fills in when missing (queue, jid...).
            job = dict(normalized(entry.item))
            if how == "retry" and isinstance(job.get("retry_count"), int):
                job["retry_count"] -= 1
            job["enqueued_at"] = now()
            where, body, queue = "queue", dumps(job), job["queue"]
        move_keys = [self.name, keys.QUEUES, keys.DEAD, keys.queue(queue or "default")]
        # A move to a queue does not trim Dead: the script ignores the limits then.
        max_jobs, timeout = (self._limits() if where == "dead"
                             else (morgue.DEAD_MAX_JOBS, morgue.DEAD_TIMEOUT))
        move_args: list[Any] = [entry.raw, where, body, queue, repr(now()), max_jobs, timeout]
        if where == "queue":
            jid = str(entry.item.get("jid", ""))
            # Its stored status says it is queued again (a page that stopped polling at
            # "dead" would not see it run), in the move's own step.
            wanted = status.wanted(entry.item)
            move_keys.append(keys.status(jid))
            move_args += [repr(time.time()) if wanted else "", status.ttl_of(job) if wanted
                          else 0]
            lock = _lock_taken_again(job) if self.key_name == "DEAD" else None
            if lock is not None:  # it released it when it died
                move_keys.append(lock[0])
                move_args += [jid, lock[1]]
        return self._move(keys=move_keys, args=move_args, client=client)

    def _limits(self) -> tuple[int, float]:
        """The published limits (``morgue.limits``): the last started worker's, not the
        defaults, so that a Kill here keeps what a worker's move to Dead keeps."""
        if self._dead_limits is not None:
            return self._dead_limits
        return morgue.limits(connection.client())

    def _entry(self, raw: bytes, score: float) -> SortedEntry:
        return SortedEntry(self, raw, score)

    def retry_all(self) -> int:
        return bulk.move_all(self, "retry")

    def kill_all(self) -> int:
        # One read of the limits for the press, not one per entry its pages move.
        self._dead_limits = self._limits()
        try:
            return bulk.move_all(self, "dead")
        finally:
            self._dead_limits = None


def _lock_taken_again(job: Payload) -> tuple[str, int] | None:
    """The lock key and TTL (ms) a unique job moved from Dead to its queue takes, as a push
    does; None for a job that is not unique. At most what a push allows: a payload written
    by hand or by another program may hold any number (or an odd "at"), which SET refuses."""
    held_for = job.get(unique.FOR)
    if not (isinstance(held_for, (int, float)) and not isinstance(held_for, bool)
            and 0 < held_for < math.inf and isinstance(job.get(unique.DIGEST), str)):
        return None
    try:
        ttl = unique.lock_ttl_ms(job, now())
    except (TypeError, ValueError, OverflowError):
        ttl = math.ceil(held_for * 1000)
    return keys.unique_lock(job[unique.DIGEST]), min(ttl, MAX_LOCK_MS)


class ScheduledSet(JobSet):
    key_name = "SCHEDULE"

    def add_all_to_queue(self) -> int:
        return bulk.move_all(self, "queue")


class RetrySet(JobSet):
    key_name = "RETRY"


class DeadSet(JobSet):
    key_name = "DEAD"

    def kill_all(self) -> int:
        """Nothing: its jobs are dead already (killed, each went back into this very set,
        with a new score, for ever)."""
        return 0

    def each(self, newest_first: bool = True) -> Iterator[SortedEntry]:
        return super().each(newest_first)

    def kill(self, payload: str | bytes, when: float | None = None) -> None:
        """Add a raw payload to the dead set, trimmed by Sidekiq's rules with the limits
        the last started worker published (``morgue.limits``)."""
        client = connection.client()
        max_jobs, timeout = morgue.limits(client)
        pipe = client.pipeline(transaction=True)
        add_dead(pipe, payload, when or now(), max_jobs, timeout)
        pipe.execute()


#: The longest lock a move takes: a push's longest unique_for, plus a year of wait.
MAX_LOCK_MS = (MAX_UNIQUE_FOR + 366 * 86400) * 1000
def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
