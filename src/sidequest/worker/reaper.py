"""The reaper, run in every worker process: recovers the jobs of processes that died.

A process is dead when its lease key has expired (Redis measures that, not our clocks).
Its in-progress jobs go back to the front of their queues; a job that was in flight at
``max_deaths`` process deaths is a poison pill and goes to the dead set instead of killing
more processes. The same step takes the dead process out of Sidekiq's process set (its hash
and work hashes), so that no page shows it running the jobs just requeued.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import redis

from sidequest import batch, batch_members, hooks, keys, retry, unique
from sidequest.api.processes import ProcessSet
from sidequest.config import Config
from sidequest.errors import JobKilled, PayloadError
from sidequest.morgue import add_dead
from sidequest.payload import Payload, decode, dumps
from sidequest.worker.clock import now
from sidequest.worker.limiter_slots import free_slots_of
from sidequest.worker.logs import counted
from sidequest.worker.redis_wait import Outage
from sidequest.worker.requeue import DEATHS_TTL, job_names, release_quarantine, requeue_list

log = logging.getLogger("sidequest")


class Reaper:
    def __init__(
        self, config: Config, identity: str, client: redis.Redis, stopping: threading.Event,
        in_doubt: Callable[[], bool] | None = None,
    ) -> None:
        #: The heartbeat's word that leases lapsed with Redis, not with their processes.
        self.in_doubt = in_doubt
        self.config = config
        self.identity = identity
        self.client = client
        self.stopping = stopping
        self._rng = random.Random()
        #: Members of sq:processes that are not UTF-8, already named in the log.
        self._skipped: set[bytes] = set()
        #: When this process last found its own lease lapsed (monotonic), or None.
        self._own_lapsed: float | None = None

    def run(self) -> None:
        outage = Outage("reaper")
        while not self.stopping.wait(self.config.reaper_interval * (0.5 + self._rng.random())):
            try:
                self.reap()
                outage.ok()
            except redis.RedisError as exc:
                outage.failed(exc)

    def reap(self) -> int:
        """Recover every dead process's jobs; returns how many were requeued."""
        # Its own lease first, a read: while Redis refuses writes the cleanup below fails,
        # and the lapse must have been seen by then.
        judge = self._may_judge(bool(self.client.exists(keys.lease(self.identity))))
        # Also prune `processes` of crashed members (at most once a minute across all
        # readers): the scheduler spaces its polls by that count.
        ProcessSet.cleanup()
        if not judge:
            return 0
        members = cast(set[bytes], self.client.smembers(keys.SQ_PROCESSES))
        owners = [o for o in self._owners(members) if o != self.identity]
        if not owners:
            return self.bury_poison()
        pipe = self.client.pipeline(transaction=False)
        for owner in owners:
            pipe.exists(keys.lease(owner))
        alive = pipe.execute()
        requeued = 0
        for owner, live in zip(owners, alive, strict=True):
            if not live:
                requeued += self._reap_one(owner)
        self.bury_poison()
        return requeued

    def _may_judge(self, own_lease: bool) -> bool:
        """Whether a lapsed lease now means a dead process. Not while this process's own
        lease has lapsed too, nor for a lease's length after: Redis refused or lost every
        process's writes (a failover that waits for a replica, a restart without its data),
        so the others' leases lapsed with ours, and each renews its own at its next beat.
        Taken for dead then, live workers' jobs were run a second time beside them."""
        if self.in_doubt is not None and self.in_doubt():
            return False
        if not own_lease:
            if self._own_lapsed is None:
                log.warning("reaper: this process's own lease lapsed (Redis refused or lost its"
                            " writes): other processes' lapsed leases are not taken for deaths"
                            " until %g s after it is renewed", self.config.lease_ttl)
            self._own_lapsed = time.monotonic()
            return False
        if self._own_lapsed is None:
            return True
        if time.monotonic() - self._own_lapsed < self.config.lease_ttl:
            return False
        self._own_lapsed = None
        return True

    def _owners(self, members: set[bytes]) -> list[str]:
        """The identities in ``members``. One that is not UTF-8 is none a Sidequest process
        takes (another program wrote it), and the requeue script cannot be handed its keys:
        it is skipped, said once in the log, rather than stop every reap after it."""
        owners = []
        for member in sorted(members):
            try:
                owners.append(member.decode())
            except UnicodeDecodeError:
                if member not in self._skipped:
                    self._skipped.add(member)
                    log.warning("reaper: skipping %r in %s: not UTF-8, so no Sidequest"
                                " process's identity", member, keys.SQ_PROCESSES)
        return owners

    def recover_gone(self, owner: str) -> None:
        """Recover the jobs of ``owner``, a process known to be dead (its supervisor reaped
        it), without waiting for its lease to run out. A Redis error is logged: the lease
        reaper of any live process recovers them later all the same."""
        try:
            self._reap_one(owner, "gone")
            release_quarantine(self.client, owner)
            self.bury_poison()
        except redis.RedisError as exc:
            log.warning("could not recover the jobs of stopped process %s now (%s); they"
                        " are recovered once its lease runs out", owner, exc)

    def _reap_one(self, owner: str, mode: str = "reap") -> int:
        if mode == "gone":
            # Its supervisor saw it exit, so its slots are free now, and first: its jobs run
            # again at once elsewhere and want them. A process whose lease merely ran out may
            # be paused or cut off, alive: its slots stay until their lock timeout, as the
            # limiter promises, or a resumed process would hold slots given to others.
            free_slots_of(owner)
        listed: list[bytes] = []
        requeued, poisoned = requeue_list(self.client, owner, mode,
                                          max_deaths=self.config.max_deaths,
                                          deaths_ttl=DEATHS_TTL, listed=listed)
        if requeued > 0 or poisoned:
            log.warning("recovered %s of dead process %s (%s to the dead set): %s",
                        counted(max(requeued, 0), "job"), owner, counted(poisoned, "poison pill"),
                        job_names(listed))
        return max(requeued, 0)

    def bury_poison(self) -> int:
        """Move payloads the reap script marked as poison into the dead set, one at a time."""
        buried = 0
        if not self.client.llen(keys.POISON):
            return 0
        # One burier at a time, or two reapers could both file the same payload.
        lock_ms = int(self.config.reaper_interval * 2000)
        if not self.client.set(keys.REAPER_LOCK, self.identity, nx=True, px=lock_ms):
            return 0
        while not self.stopping.is_set():
            raw = cast("bytes | None", self.client.lindex(keys.POISON, 0))
            if raw is None:
                return buried
            self._bury(raw)
            buried += 1
        return buried

    def _bury(self, raw: bytes) -> None:
        """One pill to the dead set, and a failure to its batch, which stops waiting for it."""
        stamp, reason = now(), self._reason()
        failed = self._failed(raw, stamp, reason)
        if not self._file(raw, failed, stamp):
            return  # another reaper, past this one's lapsed lock, filed it already
        unique.release_raw(raw, self.client)  # dead: a unique pill gives its identity back
        if failed is not None:  # a stored status says dead: the death handlers hear of it
            hooks.report_death(failed, reason)

    def _file(self, raw: bytes, failed: Payload | None, stamp: float) -> bool:
        """Move the pill from the poison list to the dead set in one transaction, if it is
        still there: WATCH makes the check and the move one step, so two reapers never both
        file it (its dead-set entry carries a time of its own, so a second would not merge)."""
        ancestry = batch_members.ancestry_of(failed) if failed is not None else None
        pipe: Any = self.client.pipeline(transaction=True)  # redis-py's stubs want str
        with pipe:
            while True:
                try:
                    pipe.watch(keys.POISON)
                    if pipe.lpos(keys.POISON, raw) is None:
                        return False
                    pipe.multi()
                    pipe.lrem(keys.POISON, 1, raw)
                    add_dead(pipe, raw if failed is None else dumps(failed), stamp,
                             self.config.dead_max_jobs, self.config.dead_timeout)
                    if failed is not None and ancestry:
                        batch.queue_update(pipe, ancestry, str(failed.get("jid", "")), "failure")
                    pipe.execute()
                    return True
                except redis.WatchError:  # the list changed (a new pill): look again
                    continue

    @staticmethod
    def _failed(raw: bytes, stamp: float, reason: JobKilled) -> Payload | None:
        """The job as the dead set keeps it; None for an unreadable payload, which is kept
        byte for byte."""
        try:
            job = decode(raw)
        except PayloadError:
            return None
        failed = retry.record_failure(job, reason, stamp)
        failed["error_class"] = "Sidequest::JobKilled"
        return failed

    def _reason(self) -> JobKilled:
        return JobKilled(
            f"the job was running when its worker process died {self.config.max_deaths} times"
            " (or retired over max_memory with this job still running at the deadline); it is"
            " treated as a poison pill (crash, segfault or out of memory?) and not retried"
        )
