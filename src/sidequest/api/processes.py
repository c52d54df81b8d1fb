"""Worker processes (Sidequest's and Ruby Sidekiq's alike) and the jobs they are running."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from sidequest import connection, keys, url_problems
from sidequest.api.lenient import (
    as_float,
    as_int,
    exact,
    json_object,
    key_of,
    replies,
    shown,
)
from sidequest.api.records import JobRecord
from sidequest.errors import SidequestError

#: The process record's field that says a stop has begun (Sidekiq has none such: its
#: "quiet" is true for both), written by a Sidequest worker for the Busy page.
STOPPING_FIELD = "sq_stopping"
_FIELDS = ("info", "busy", "beat", "quiet", "rss", "rtt_us", "concurrency", STOPPING_FIELD)
#: Pruning the process set runs at most this often across all readers (Sidekiq 7's rule).
CLEANUP_EVERY = 60


#: Seconds without a heartbeat after which a listed process is shown as not responding.
SILENT_AFTER = 15.0


class Process:
    """One entry of the process set, as its last heartbeat described it. ``identity`` is
    printable: bytes that are not UTF-8 (another program's) are written out (``\\xff``),
    while its signals still go to the keys of its exact bytes."""

    def __init__(self, identity: str, info: dict[str, Any], fields: dict[str, Any],
                 sidequest: bool = False) -> None:
        self._exact = identity  # lenient.exact text, which addresses its keys
        self.identity = shown(identity)
        self.info = info
        #: A Sidequest process (it holds a lease), not Ruby Sidekiq: only it can cancel a job.
        self.sidequest = sidequest
        self.busy = as_int(fields.get("busy"))
        self.beat = as_float(fields.get("beat")) or 0.0
        #: True once the process was told to quiet or stop (Sidekiq's ``stopping?``).
        self.stopping = fields.get("quiet") == "true"
        #: A Sidequest process whose stop has begun: it finishes its jobs, then exits.
        self.shutting_down = fields.get(STOPPING_FIELD) == "true"
        self.rss = as_int(fields.get("rss"))
        self.rtt_us = as_int(fields.get("rtt_us"))
        hash_concurrency = fields.get("concurrency")
        # Sidekiq 8.1.2+ keeps concurrency only as a hash field; older ones only in info.
        self.concurrency = as_int(hash_concurrency or info.get("concurrency"))

    def __repr__(self) -> str:
        return f"<Process {self.identity} busy={self.busy}/{self.concurrency}>"

    hostname = property(lambda self: str(self.info.get("hostname", "")))
    pid = property(lambda self: as_int(self.info.get("pid")))
    tag = property(lambda self: str(self.info.get("tag") or ""))
    labels = property(lambda self: list(self.info.get("labels") or []))
    # Names only: another program may write anything there (a string, not a list).
    queues = property(lambda self: [q for q in _as_list(self.info.get("queues")) if
                                    isinstance(q, str)])
    started_at = property(lambda self: as_float(self.info.get("started_at")) or 0.0)
    version = property(lambda self: str(self.info.get("version") or ""))

    def silent(self, now: float) -> bool:
        """No heartbeat for longer than a live process leaves between two (Sidequest says how
        often it beats; Sidekiq beats every 5 or 10 s): killed or frozen. It stays listed
        until its entry expires (a Sidequest process's lease, 20 s), and then its jobs are put
        back. Three intervals, at least SILENT_AFTER: a clock a little off is not silence."""
        every = as_float(self.info.get("beat_every")) or 0.0
        return self.beat > 0 and now - self.beat > max(SILENT_AFTER, 3 * every)

    @property
    def periodic(self) -> list[str]:
        """The periodic entries this Sidequest process pushes (none for Sidekiq's)."""
        return [name for name in _as_list(self.info.get("periodic")) if isinstance(name, str)]

    @property
    def embedded(self) -> bool:
        """Started inside an application (``embed()``, Sidekiq's embedded mode): only that
        application quiets or stops it."""
        return self.info.get("embedded") is True

    def quiet(self) -> None:
        """Stop fetching new jobs (TSTP); the process stays up until stopped."""
        self._refuse_if_embedded("quiet")
        self.signal("TSTP")

    def stop(self) -> None:
        """Graceful stop (TERM): running jobs finish or go back to their queues."""
        self._refuse_if_embedded("stop")
        self.signal("TERM")

    def _refuse_if_embedded(self, action: str) -> None:
        if self.embedded:
            raise SidequestError(
                f"cannot {action} {self.identity}: it is embedded in an application, which"
                " starts and stops it (as Sidekiq refuses for embedded processes)")

    def dump_threads(self) -> None:
        """Ask the process to log every thread's stack (TTIN)."""
        self.signal("TTIN")

    def signal(self, name: str) -> None:
        pipe = connection.client().pipeline(transaction=True)
        pipe.lpush(key_of(keys.signals, self._exact), name)
        pipe.expire(key_of(keys.signals, self._exact), 60)
        pipe.execute()



class ProcessSet:
    """Every live process; entries whose heartbeat expired are pruned when read, and
    Sidequest processes whose lease expired are not shown (see _live_reads)."""

    def __init__(self, clean: bool = True) -> None:
        if clean:
            try:
                self.cleanup()
            except redis.ResponseError as exc:
                # A write refused for now (too few replicas in reach, a read-only replica
                # during a failover): the processes are still there to read, and the next
                # reader prunes.
                if not url_problems.refused_for_now(exc) and not isinstance(
                        exc, redis.ReadOnlyError):
                    raise

    @staticmethod
    def cleanup() -> int:
        """Drop identities whose process hash expired; at most once a minute across readers.
        Identities are read and removed as the bytes they are stored as, so one that is not
        UTF-8 is pruned like any other; one whose key is not a hash has no ``info`` and goes
        too."""
        client = connection.client()
        if not client.set(keys.PROCESS_CLEANUP, "1", nx=True, ex=CLEANUP_EVERY):
            return 0
        identities, _ = _members(client)
        pipe = client.pipeline(transaction=False)
        for identity in identities:
            pipe.hget(key_of(keys.process, identity), "info")
        gone = [i for i, info in zip(identities, replies(pipe), strict=True) if info is None]
        if gone:
            client.srem(keys.PROCESSES, *gone)
        return len(gone)

    def __iter__(self) -> Iterator[Process]:
        for identity, ours, (values,) in _live_reads(
                lambda p, i: p.hmget(key_of(keys.process, i), _FIELDS)):
            if values is None:
                continue  # its key is not a hash: another program's, no process
            fields = dict(zip(_FIELDS, (_text(v) for v in values), strict=True))
            if fields["info"] is None:
                continue  # expired between the two reads
            yield Process(identity, json_object(fields["info"]), fields, sidequest=ours)

    @property
    def size(self) -> int:
        """How many processes iterating shows: the set's members less the dead Sidequest
        processes still listed (Stats.processes_size counts the set's members, as Sidekiq)."""
        return sum(1 for _, _, (listed,) in _live_reads(
            lambda p, i: p.hexists(key_of(keys.process, i), "info")) if listed)

    def __len__(self) -> int:
        return self.size

    def processes(self) -> list[Process]:
        return list(self)

    @property
    def total_concurrency(self) -> int:
        return sum(p.concurrency for p in self)

    @property
    def total_rss_kb(self) -> int:
        return sum(p.rss for p in self)

    def find(self, identity: str) -> Process | None:
        return next((p for p in self if p.identity == identity), None)


@dataclass(frozen=True)
class Work:
    """A job some process is running right now."""

    process: str
    tid: str
    queue: str
    run_at: float
    job: JobRecord


class WorkSet:
    """The jobs running in every live process, from their work hashes."""

    def __iter__(self) -> Iterator[Work]:
        works = []
        for owner, _, (work, legacy) in _live_reads(_read_work):
            entries = {**(legacy or {}), **(work or {})}  # None: a key of another type
            works += [_work(shown(owner), shown(tid), value) for tid, value in entries.items()]
        works.sort(key=lambda w: w.run_at)
        return iter(works)

    @property
    def size(self) -> int:
        busy = _live_reads(lambda p, i: p.hget(key_of(keys.process, i), "busy"))
        return sum(as_int(b) for _, _, (b,) in busy)

    def __len__(self) -> int:
        return self.size


def _live_reads(read: Callable[[Any, str], object]) -> list[tuple[str, bool, list[Any]]]:
    """Each member of ``processes`` in order (as ``lenient.exact`` text, which ``read``
    turns into keys with ``key_of``), whether it is a Sidequest process, and the replies of
    the commands ``read`` queues for it, leaving out Sidequest processes whose lease has
    expired.

    Those are dead (the reaper's own test), but their hashes outlive them until a reaper
    recovers their jobs, up to ``reaper_interval`` later, and deletes them; shown meanwhile,
    a killed process would seem to run the jobs that are about to run elsewhere. Ruby
    processes have no lease and are not in ``sq:processes``: they are never checked. The
    cost is one more set read and one EXISTS per Sidequest process, in the same two round
    trips. A failed read (a key of the wrong type) replies None."""
    client = connection.client()
    identities, ours = _members(client)
    checked = [i for i in identities if i in ours]
    pipe = client.pipeline(transaction=False)
    for identity in checked:
        pipe.exists(key_of(keys.lease, identity))
    for identity in identities:
        read(pipe, exact(identity))
    results = replies(pipe)
    leases, reads = results[:len(checked)], results[len(checked):]
    dead = {i for i, live in zip(checked, leases, strict=True) if not live}
    per = len(reads) // max(1, len(identities))  # replies per process
    return [(exact(identity), identity in ours, reads[n * per:(n + 1) * per])
            for n, identity in enumerate(identities) if identity not in dead]


def _members(client: Any) -> tuple[list[bytes], set[bytes]]:
    """``processes`` (sorted) and ``sq:processes``, in one round trip, as stored (bytes);
    a key of another type reads as no members."""
    pipe = client.pipeline(transaction=False)
    pipe.smembers(keys.PROCESSES)
    pipe.smembers(keys.SQ_PROCESSES)
    listed, ours = replies(pipe)
    return sorted(listed or ()), ours or set()


def _read_work(pipe: Any, identity: str) -> None:
    # Sidekiq 6.4.1 writes only ":workers"; later versions and Sidequest ":work".
    pipe.hgetall(key_of(keys.work, identity))
    pipe.hgetall(key_of(keys.workers_legacy, identity))


def _text(value: bytes | None) -> str | None:
    # Lenient: a field another program wrote in another encoding reads as unknown text.
    return value.decode("utf-8", "replace") if value is not None else None


def _work(process: str, tid: str, value: bytes) -> Work:
    entry = json_object(value)  # an unreadable entry shows as an unknown job, not an error
    payload = entry.get("payload")
    # Readers accept the payload as a JSON string or as an object (Sidekiq 8 does both).
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    return Work(process, tid, str(entry.get("queue", "")), as_float(entry.get("run_at")) or 0.0,
                JobRecord(raw))


def awaiting_recovery() -> dict[str, int]:
    """How many jobs wait in the in-progress list of each Sidequest process that died (its
    lease expired), by identity. A running Sidequest worker's reaper puts them back in their
    queues within about ``reaper_interval``; while none runs (a shop whose other workers are
    all Ruby Sidekiq) they wait in Redis, kept but unseen elsewhere."""
    client = connection.client()
    ours = sorted(_members(client)[1])
    pipe = client.pipeline(transaction=False)
    for identity in ours:
        pipe.exists(key_of(keys.lease, identity))
        pipe.llen(key_of(keys.inprogress, identity))
    answers = replies(pipe)  # a key of the wrong type reads as unknown, not an error
    return {shown(identity): as_int(count) for identity, live, count
            in zip(ours, answers[::2], answers[1::2], strict=True)
            if not live and as_int(count)}


#: Quarantined jobs read to name their queues (the count is the whole list's).
QUARANTINE_READ = 1000


def quarantined() -> tuple[int, list[str]]:
    """How many jobs wait in the quarantine (running in processes that died at least twice:
    each runs alone, one at a time, in a process serving its queue), and their queues."""
    client = connection.client()
    pipe = client.pipeline(transaction=False)
    pipe.llen(keys.QUARANTINE)
    pipe.lrange(keys.QUARANTINE, -QUARANTINE_READ, -1)
    count, entries = replies(pipe)
    queues: set[str] = set()
    for raw in entries if isinstance(entries, list) else ():
        try:
            queues.add(str(json.loads(raw).get("queue") or "default"))
        except (ValueError, AttributeError, UnicodeDecodeError):
            continue  # an unreadable one goes to the dead set when it is taken
    return as_int(count), sorted(queues)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if isinstance(value, str) else []
