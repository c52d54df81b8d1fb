"""Where ``sidequest.testing``'s fake mode keeps pushed jobs: per job class, in push order,
with the order across classes that its drains follow."""

from __future__ import annotations

import threading

from sidequest.payload import Payload

Entry = tuple[int, Payload]
#: Entries the order map may hold beyond the queued jobs' before it drops those of jobs no
#: longer in any list (a test emptied one by hand: ``SendWelcome.jobs.clear()``).
SLACK = 64


class Store:
    """Fake mode's jobs, per wire name, in push order.

    Each class's list is the one ``Job.jobs`` hands out, so Sidekiq's idiom
    ``SendWelcome.jobs.clear()`` empties the queue. Each job also gets a global sequence
    number, kept beside it (keyed by the payload's identity), so that ``queued`` and
    ``drain_all`` keep push order across classes, and a drain can tell the jobs it started
    with from their offspring. Each number is kept with its payload and given only to that
    very object: a list emptied by hand frees its payloads, and a new one (put in a list by
    hand) could take a freed one's id, and with it an old job's place.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_class: dict[str, list[Payload]] = {}
        self._seq: dict[int, Entry] = {}
        self._prune_at = SLACK
        self.last_seq = 0

    def add(self, jobs: list[Payload]) -> None:
        with self._lock:
            for job in jobs:
                self.last_seq += 1
                self._seq[id(job)] = (self.last_seq, job)
                self._by_class.setdefault(job["class"], []).append(job)
            if len(self._seq) > self._prune_at:
                self._prune()

    def _prune(self) -> None:
        """Forget the numbers of jobs no longer in any list (emptied by hand), which would
        otherwise pile up, and keep their payloads alive, for the whole test session."""
        queued = {id(job) for jobs in self._by_class.values() for job in jobs}
        self._seq = {key: entry for key, entry in self._seq.items() if key in queued}
        self._prune_at = 2 * len(self._seq) + SLACK  # amortized: each add stays O(1)

    def jobs(self, name: str) -> list[Payload]:
        """The live list of ``name``'s queued payloads: changing it changes the queue."""
        with self._lock:
            return self._by_class.setdefault(name, [])

    def has(self, name: str) -> bool:
        with self._lock:
            return bool(self._by_class.get(name))

    def _order(self, job: Payload) -> int:
        # A payload a test put in the list by hand has no number: it counts as the newest.
        entry = self._seq.get(id(job))
        return entry[0] if entry is not None and entry[1] is job else self.last_seq + 1

    def _forget(self, job: Payload) -> int:
        """``job``'s number (the newest's if it has none), no longer kept."""
        number = self._order(job)
        if self._seq.get(id(job), (0, None))[1] is job:
            del self._seq[id(job)]
        return number

    def queued(self, queue: str) -> list[Payload]:
        with self._lock:
            jobs = [job for jobs in self._by_class.values() for job in jobs]
            return sorted((j for j in jobs if j["queue"] == queue), key=self._order)

    def pop(self, name: str | None) -> Entry | None:
        """Remove and return the oldest job of class ``name``, or of any class if None."""
        with self._lock:
            if name is None:
                heads = [(self._order(jobs[0]), key) for key, jobs in self._by_class.items()
                         if jobs]
                if not heads:
                    return None
                name = min(heads)[1]
            jobs = self._by_class.get(name)
            if not jobs:
                return None
            job = jobs.pop(0)
            return self._forget(job), job

    def put_back(self, entry: Entry) -> None:
        """Return a popped job to the head of its class's list, with its place in the order
        (one a drain could not run stays queued for the test to look at)."""
        seq, job = entry
        with self._lock:
            self._seq[id(job)] = (seq, job)
            self._by_class.setdefault(job["class"], []).insert(0, job)

    def remove(self, jid: str) -> Payload | None:
        """Take the job ``jid`` out of its class's list (cancelled); None if none has it."""
        with self._lock:
            for jobs in self._by_class.values():
                for job in jobs:
                    if job.get("jid") == jid:
                        jobs.remove(job)
                        self._forget(job)
                        return job
        return None

    def clear(self, name: str | None) -> None:
        """Empty ``name``'s list (in place: a test may hold it), or every list if None."""
        with self._lock:
            if name is None:  # every number goes, those of lists emptied by hand too
                self._seq.clear()
                self._prune_at = SLACK
            lists = self._by_class.values() if name is None else [self._by_class.get(name, [])]
            for jobs in lists:
                for job in jobs:
                    self._forget(job)
                jobs.clear()

