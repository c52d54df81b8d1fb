"""The heartbeat: every few seconds, tell Redis this process is alive and what it is doing.

One beat: flush the processed/failed counters, rewrite the work hashes, refresh the lease
(the key whose expiry lets other processes recover our jobs), write the process hash that
Sidekiq's API and UI read, and pick up a remote signal (TSTP, TERM, TTIN).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import redis

from sidequest import __version__, keys
from sidequest.api.processes import STOPPING_FIELD
from sidequest.config import Config
from sidequest.payload import dumps
from sidequest.worker import clock, redis_loss
from sidequest.worker.state import ProcessState

log = logging.getLogger("sidequest")
#: Sidekiq's TTL for the process hash and work hashes.
PROCESS_TTL = 60
STATS_TTL = 5 * 365 * 24 * 3600


def rss_kb() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Heartbeat:
    def __init__(
        self,
        config: Config,
        identity: str,
        client: redis.Redis,
        state: ProcessState,
        on_signal: Callable[[str], None],
        *,
        embedded: bool = False,
    ) -> None:
        self.config = config
        #: Started by embed() inside an application: Sidekiq's API refuses to signal it.
        self.embedded = embedded
        self.identity = identity
        self.client = client
        self.state = state
        self.on_signal = on_signal
        self.quiet = False
        #: A stop has begun: the running jobs finish (up to the timeout), then it exits. The
        #: record says so apart from a quiet, which Sidekiq's own field cannot tell.
        self.shutting_down = False
        self._last_renewal: float | None = None
        #: When (monotonic) the last beat that wrote the record was sent: see _lost_record.
        self._written_at: float | None = None
        self._server = redis_loss.Server()
        #: Until when (monotonic) other processes' lapsed leases are not taken for deaths.
        self.doubt_until = 0.0
        self._fields = self._info()
        self.info = dumps(self._fields)

    @property
    def registered(self) -> bool:
        """Whether a beat has written the process record (and its lease)."""
        return self._written_at is not None

    def describe(self, **fields: Any) -> None:
        """Add fields to the process record's info (before the first beat)."""
        self._fields.update(fields)
        self.info = dumps(self._fields)

    def _info(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "hostname": socket.gethostname(),
            "started_at": time.time(),
            "pid": _pid(),
            "tag": cfg.tag,
            "concurrency": cfg.concurrency,
            "queues": cfg.queue_names,
            "weights": [{name: weight for name, weight in cfg.queues}],
            "labels": list(cfg.labels),
            "identity": self.identity,
            "version": __version__,
            "embedded": self.embedded,
            # Sidequest's own: how often it beats, so that a reader can tell a silent one.
            "beat_every": cfg.heartbeat_interval,
        }

    def beat(self) -> None:
        """One heartbeat; raises RedisError if Redis is unreachable (the caller retries)."""
        try:
            self._beat()
        except (redis.ConnectionError, redis.TimeoutError):
            raise  # unreachable: so is the lease
        except redis.RedisError:
            # Refused, not unreachable. On a Cluster whose slot is being moved, a transaction
            # over keys split between the two nodes is refused (ASK, TRYAGAIN) for as long as
            # the move lasts, which can outlast the lease: then a reaper would take this
            # process's running jobs. The lease alone is one key, which a single command
            # reaches wherever it is.
            with contextlib.suppress(redis.RedisError):
                self._renew_lease(self.client)
                self._renewed()
            raise
        self._renewed()

    def _renewed(self) -> None:
        """Note a renewal. One after a gap long enough for another process's lease to have
        lapsed meanwhile (it may have renewed up to two beats before our last renewal) means
        Redis refused or lost writes: every lease may have lapsed, not only a dead process's,
        and the others renew theirs within a beat or two of ours."""
        cfg = self.config
        now = time.monotonic()
        last, self._last_renewal = self._last_renewal, now
        gap = max(2 * cfg.heartbeat_interval, cfg.lease_ttl - 2 * cfg.heartbeat_interval)
        if last is not None and now - last > gap:
            self.doubt_until = now + cfg.lease_ttl

    def leases_in_doubt(self) -> bool:
        """Whether a lapsed lease may now be a live process's (see _renewed): the reaper
        then takes no process for dead."""
        return time.monotonic() < self.doubt_until

    def _renew_lease(self, target: Any) -> None:
        target.set(keys.lease(self.identity), _pid(), px=int(self.config.lease_ttl * 1000))

    def _beat(self) -> None:
        self._flush_stats()
        busy = self.state.busy()
        rtt_us = int(clock.measure(self.client) * 1e6)  # Redis's clock, and the round trip
        pipe = self.client.pipeline(transaction=True)
        # First, so that its answer (how many fields were new) is the first result.
        pipe.hset(keys.process(self.identity), mapping={
            "info": self.info,
            "busy": len(busy),
            "beat": time.time(),
            "quiet": "true" if self.quiet else "false",
            STOPPING_FIELD: "true" if self.shutting_down else "false",
            "rss": rss_kb(),
            "rtt_us": rtt_us,
            "concurrency": self.config.concurrency,
        })
        pipe.expire(keys.process(self.identity), PROCESS_TTL)
        self._work_hashes(pipe, busy)
        pipe.sadd(keys.PROCESSES, self.identity)
        pipe.sadd(keys.SQ_PROCESSES, self.identity)
        self._renew_lease(pipe)
        pipe.rpop(keys.signals(self.identity))
        sent = time.monotonic()
        results = pipe.execute()
        self._lost_record(sent, time.monotonic(), int(results[0]))
        signal = results[-1]
        if signal:
            was_quiet = self.quiet
            self.on_signal(signal.decode())
            if self.quiet and not was_quiet:
                # Now, not at the next beat: the request is gone from the signals list, so
                # until then the dashboard read "running" for a process already quiet.
                self.say_state()

    def _lost_record(self, sent: float, done: float, new_fields: int) -> None:
        """Say so when Redis lost the process record, written too recently to have expired
        and its lease too, so that no reaper removed it either: Redis then lost data behind
        the worker's back, jobs with it, and a worker that went on silently left the
        operator to find out from missing work. Leases are in doubt for a while: those of
        the other processes may have gone with it. A loss during an outage longer than the
        lease goes unsaid: a reaper may have removed the record then, which is no loss. The
        gap is the longest the two writes can be apart: from the send of the one before
        (it ran after that) to the answer of this one (it ran before that), so a pause
        inside this beat (a GC, a slow network) cannot pass a reap for a loss."""
        written, self._written_at = self._written_at, sent
        if written is None:
            self._server.remember(self.client, keys.process(self.identity))
        elif new_fields and done - written < 0.9 * min(PROCESS_TTL, self.config.lease_ttl):
            self._server.say_lost(self.client, keys.process(self.identity), done - written)
            self.doubt_until = time.monotonic() + self.config.lease_ttl

    def say_state(self) -> None:
        """Write quiet and stopping now, not at the next beat. With the record's TTL: a stop
        that forgot the record in between must not leave one that never lapses."""
        with contextlib.suppress(redis.RedisError):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(keys.process(self.identity), mapping={
                "quiet": "true" if self.quiet else "false",
                STOPPING_FIELD: "true" if self.shutting_down else "false"})
            pipe.expire(keys.process(self.identity), PROCESS_TTL)
            pipe.execute()

    def _work_hashes(self, pipe: Any, busy: dict[str, dict[str, Any]]) -> None:
        # Both names: Sidekiq 6.4.1 reads ":workers", later versions ":work".
        for key in (keys.work(self.identity), keys.workers_legacy(self.identity)):
            pipe.unlink(key)
            if busy:
                pipe.hset(key, mapping={tid: _work_entry(entry) for tid, entry in busy.items()})
                pipe.expire(key, PROCESS_TTL)

    def _flush_stats(self) -> None:
        processed, failed = self.state.take_counts()
        if not processed and not failed:
            return
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        pipe = self.client.pipeline(transaction=True)
        for kind, total_key, count in (("processed", keys.STAT_PROCESSED, processed),
                                       ("failed", keys.STAT_FAILED, failed)):
            if count:
                pipe.incrby(total_key, count)
                pipe.incrby(keys.stat_daily(kind, day), count)
                pipe.expire(keys.stat_daily(kind, day), STATS_TTL)
        try:
            pipe.execute()
        except redis.RedisError:
            self.state.restore(processed, failed)  # counted again at the next beat
            raise

    def clear(self) -> None:
        """At shutdown: leave the process set and drop our work hashes and lease."""
        self._flush_stats()
        pipe = self.client.pipeline(transaction=True)
        pipe.srem(keys.PROCESSES, self.identity)
        pipe.unlink(keys.work(self.identity), keys.workers_legacy(self.identity))
        pipe.unlink(keys.lease(self.identity))
        pipe.hset(keys.process(self.identity), "quiet", "true")
        # With its TTL: on a record Redis lost (the stop that follows a failure), the HSET
        # made a record that never lapsed.
        pipe.expire(keys.process(self.identity), PROCESS_TTL)
        # Leave the reapers' list too, unless jobs are still in progress (a failed requeue):
        # then the entry stays, so that a reaper recovers them once the lease is gone.
        # execute_command: a Redis Cluster pipeline's eval() is another method.
        pipe.execute_command(  # type: ignore[no-untyped-call]
            "EVAL", _FORGET, 2, keys.inprogress(self.identity),
            keys.SQ_PROCESSES, self.identity)
        pipe.execute()


_FORGET = ("if redis.call('EXISTS', KEYS[1]) == 0 then"
           " return redis.call('SREM', KEYS[2], ARGV[1]) end return 0")


def _work_entry(entry: dict[str, Any]) -> str:
    """Sidekiq's work value: the payload embedded as a JSON string."""
    payload = entry["payload"]
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    return dumps({**entry, "payload": payload})


def _pid() -> int:
    return os.getpid()
