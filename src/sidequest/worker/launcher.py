"""The Launcher composes a worker process: Manager (fetcher + processors), heartbeat,
scheduler, reaper and periodic threads; it turns signals (local or from Redis) into quiet and
stop.

Lifecycle: start() -> [quiet()] -> stop(). ``run()`` is the command-line form: it installs
signal handlers, blocks until TERM/INT (or a remote TERM), stops, and returns.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from sidequest import (
    client,
    connection,
    hooks,
    metrics,
    middleware,
    morgue,
    status,
    unique,
    url_problems,
)
from sidequest import limiter_renewal as renewal
from sidequest.config import Config
from sidequest.errors import ConfigError
from sidequest.job import install_worker
from sidequest.queue_specs import warn_of_colon_weights
from sidequest.worker import cancels, guards, identity, logs, sharding, watchdog
from sidequest.worker.beating import NAP, Beating
from sidequest.worker.cancels import CancelWatcher
from sidequest.worker.heartbeat import Heartbeat, rss_kb
from sidequest.worker.inbox import Inbox
from sidequest.worker.lifecycle import (
    LifeEvents,
    StartupHookError,
    StoppedWhileStarting,
    stop_budget,
)
from sidequest.worker.manager import Manager
from sidequest.worker.periodic import (
    PeriodicPoller,
    load_entries,
    record_outcome,
    warn_unserved,
)
from sidequest.worker.reaper import Reaper
from sidequest.worker.redis_wait import check_redis, first_client
from sidequest.worker.scheduler import Scheduler
from sidequest.worker.signal_handling import SignalHandling
from sidequest.worker.state import ProcessState
from sidequest.worker.threads import spawn

if TYPE_CHECKING:
    from sidequest.worker.exporter import Exporter

log = logging.getLogger("sidequest")




class Launcher(Beating, SignalHandling):
    def __init__(self, config: Config, embedded: bool = False,
                 supervised: bool = False, nonce: str | None = None,
                 gone: tuple[str, ...] = (), *, quiet: bool = False,
                 heard: Callable[[str], None] | None = None) -> None:
        if client.pushes_are_local():
            raise ConfigError(
                "a worker cannot start while sidequest.testing's fake or inline mode is on:"
                " the jobs its jobs push would stay in this process and never reach Redis."
                " Start it inside 'with testing.disable():', or outside the test's fake mode"
            )
        if hasattr(sys, "set_int_max_str_digits"):
            # Ruby writes integers of any size; Python's JSON refuses those over 4,300
            # digits unless this process lifts the limit (3.10.7+/3.11).
            sys.set_int_max_str_digits(0)
        sharding.check_served(config)  # every queue on this process's Redis
        self.config = config
        self.identity = identity.make(nonce)  # the nonce a -P supervisor chose
        #: Processes known dead (their supervisor reaped them): recovered at start.
        self.gone = gone
        #: Start quieted: a -P supervisor told to quiet replaces a dead child with a quiet one.
        self.start_quiet = quiet
        #: Told each signal read from Redis: a -P supervisor learns of a remote quiet or stop.
        self._heard = heard
        self.state = ProcessState()
        self.stopping = threading.Event()
        self.stop_requested = threading.Event()
        self.retired = False  # a stuck job made the process stop
        #: It retires over max_memory: the jobs still running at its deadline are pushed
        #: back as deaths (which of them grew it is not known; a stuck job is, and failed).
        self.over_memory = False
        #: Every processor thread checks the memory after its job: one of them retires.
        self._retire_lock = threading.Lock()
        self.stopped_on_request = False  # a stop from the dashboard or the API
        self.exporter: Exporter | None = None  # --metrics-port
        self._client = first_client()
        self.manager = Manager(config, self.identity, self.state)
        self.life = LifeEvents(self.manager.asyncio)  # the application's on_startup, ...
        self.manager.drained = self.life.shutdown
        self.embedded = embedded
        self.heartbeat = Heartbeat(config, self.identity, self._client, self.state,
                                   self.remote_signal, embedded=embedded)
        self.scheduler = Scheduler(config, connection.new_client(retries=0), self.stopping)
        self.reaper = Reaper(config, self.identity, connection.new_client(retries=0),
                             self.stopping, in_doubt=self.heartbeat.leases_in_doubt)
        # With shards, an entry whose queue is on another shard is that shard's process's.
        entries = sharding.own_entries(load_entries(config))
        warn_unserved(entries, config)
        self.periodic = PeriodicPoller(config, connection.new_client(retries=0), self.stopping,
                                       entries)
        # Named in its record: the dashboard tells an entry that no live process defines.
        self.heartbeat.describe(periodic=sorted(entry.name for entry in entries))
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._stop_signals = 0
        # supervised: forked by a -P supervisor, which forwards signals (the inbox drops
        # their echoes)
        self.inbox = Inbox(self._os_act, supervised)

    def start(self) -> None:
        """Run the on_startup hooks, register with Redis (waiting for it if it is down),
        then start every thread."""
        # First: one that fails leaves nothing behind to undo, and a stop meanwhile starts
        # nothing (StoppedWhileStarting).
        renewal.owner = self.identity  # its slots' tokens name it, freed at once if it dies
        self.life.startup(self.stop_requested)
        middleware.server.prepend(guards.server_middleware)  # unique locks, expiry
        # Whether or not this process defines entries: a tick's job may be another pool's.
        middleware.server.prepend(record_outcome)
        middleware.server.prepend(metrics.recorder)  # outermost: times the whole chain
        self._serve_metrics()
        for handler in (unique.on_death, status.on_death):  # a job that will not run again
            if handler not in hooks.death_handlers:  # frees its identity, is marked dead
                hooks.on_death(handler)
        if self.start_quiet:  # a replacement in a quieted -P group: quiet from its first beat
            self.heartbeat.quiet = True
        connection.load_scripts()
        self._first_beat()
        check_redis(self._client)
        # The dashboard and the API trim Dead by these too: a Kill there keeps what this keeps.
        morgue.publish(self._client, self.config.dead_max_jobs, self.config.dead_timeout)
        for owner in self.gone:  # now, not when its lease runs out: it is known dead
            self.reaper.recover_gone(owner)
        # The banner first, written out now: a job's own output must not precede it.
        log.info("%s", self._banner())
        logs.flush()
        self.manager.retire = self._retire
        if self.config.max_memory is not None:
            # After every job, not only on the heartbeat: a few fast jobs that each keep
            # memory could otherwise carry the process far past the limit between two beats.
            self.manager.after_job = self._check_memory
        install_worker(self)  # Job.cancelled() and Job.stopping() ask it
        # Only started async jobs are cancelled on the loop: one still waiting for a slot is
        # dropped when it gets one, by the guard that drops any cancelled job (its batch,
        # status and unique lock hear of it there).
        watcher = CancelWatcher(connection.new_client(retries=0), self.stopping,
                                self.manager.asyncio.cancel_started)
        watcher.first_look()  # before the first fetch: no job cancelled earlier starts
        if self.start_quiet:  # before the fetcher starts: not one job is taken
            self.quiet()
        self.manager.start()
        for target, name in ((self._beat_loop, "heartbeat"), (self.scheduler.run, "scheduler"),
                             (self.reaper.run, "reaper"), (self.periodic.run, "periodic"),
                             (watcher.run, "cancels")):
            self._threads.append(spawn(target, f"sidequest-{name}", self.stopping))

    def _banner(self) -> str:
        """The start line. It names the Redis (password hidden): an app pushing to one
        database and a worker reading another is otherwise silent."""
        threads = self.config.concurrency
        return (f"Sidequest {self.identity} started:"
                f" {'strict' if self.config.strict else 'weighted'},"
                f" {threads} thread{'' if threads == 1 else 's'},"
                f" {self.config.async_concurrency} async jobs at once,"
                f" queues {', '.join(self.config.queue_names)}, Redis {connection.redacted()}")

    def _serve_metrics(self) -> None:
        """``--metrics-port``: this process's own Prometheus endpoint (prometheus-client is
        imported only then)."""
        port = self.config.metrics_port
        if port is None or self.exporter is not None:
            return
        from sidequest.worker.exporter import Exporter  # noqa: PLC0415 - needs the extra

        # Busy as the heartbeat reports it (the dashboard's figure): the jobs that run, not
        # the threads waiting to hand an async job to a full event loop.
        self.exporter = Exporter(self.identity, self.config.concurrency,
                                 lambda: len(self.state.work))
        self.exporter.serve(self.config.metrics_host, port)
        middleware.server.prepend(self.exporter)
        log.info("Prometheus metrics of this process on http://%s:%d/metrics",
                 self.config.metrics_host, port)

    def _check_memory(self) -> None:
        limit = self.config.max_memory
        if limit is None or self.retired:
            return
        used = rss_kb() / 1024
        if used <= limit:
            return
        with self._retire_lock:  # threads finishing jobs together would each say it
            if self.retired:
                return
            log.warning("memory %.0f MB is over max_memory %d MB: finishing the running jobs "
                        "and exiting for the supervisor to start a fresh process", used, limit)
            self.over_memory = True
            self._retire()

    def _retire(self) -> None:
        """A job ignored its timeout: stop (its thread cannot be killed) for the supervisor
        to start a fresh process; the other jobs are pushed back as at any stop."""
        self.retired = True
        if self._heard is not None:  # a -P supervisor replaces it at once, not as a crash
            self._heard("RETIRED")
        self.stop_requested.set()
        # Now, not when the main thread acts on the stop (up to NAP later): a process over
        # its memory limit takes no further job, and its prefetched ones go back at once.
        self.manager.quiet()
        self.life.quiet()
        if self.embedded:
            # No run loop acts on the stop here, and no supervisor starts a fresh worker: stop
            # it now (off this thread, which may be one the stop waits for), so that it no
            # longer shows as a running process that takes no job.
            log.error("this embedded worker has stopped taking jobs and stops now; the"
                      " application goes on without it: restart the application to run jobs"
                      " in it again")
            threading.Thread(target=self.stop, name="sidequest-retire", daemon=True).start()

    def is_cancelled(self, jid: str) -> bool:
        return cancels.is_cancelled(jid)

    def is_stopping(self) -> bool:
        # Quieted, not merely asked: the main thread acts on a stop up to NAP later, and a
        # job that saw the stop and pushed its remainder would meanwhile be fetched and run
        # again, over and over, by the worker that is about to stop.
        return self.manager.quieted.is_set()

    def quiet(self) -> None:
        if not self.manager.quieted.is_set():
            log.info("quiet: no new jobs will be fetched")
        self.heartbeat.quiet = True
        self.scheduler.paused.set()
        self.periodic.paused.set()
        self.manager.quiet()
        self.life.quiet()

    def stop(self) -> bool:
        """Graceful stop; returns True when no job had to be pushed back. A second call (an
        embedded worker's application stopping one that retired) waits for the first."""
        with self._stop_lock:
            if self._stopped:
                return True
            self._stopped = True
            return self._stop()

    def _stop(self) -> bool:
        log.info("stopping: waiting up to %gs for running jobs", self.config.timeout)
        self.life.quiet()  # at the start of the stop, as Sidekiq's :quiet
        self.heartbeat.quiet = self.heartbeat.shutting_down = True
        # The Busy page says "stopping" while its jobs finish; off this thread, whose
        # deadlines a Redis that does not answer must not push back.
        with contextlib.suppress(RuntimeError):  # no thread to be had: the next beat says it
            threading.Thread(target=self.heartbeat.say_state, name="sidequest-say-stopping",
                             daemon=True).start()
        # As when quieted, it pushes nothing more: a live process pushes what falls due
        # meanwhile, or the next to start does (periodic ticks within periodic_grace).
        self.scheduler.paused.set()
        self.periodic.paused.set()
        jobs_deadline = time.monotonic() + self.config.timeout
        self.life.stop_begins(jobs_deadline)  # the hooks end within the hard deadline
        clean = self.manager.stop(jobs_deadline, self.over_memory)
        self._forget_owner()
        metrics.recorder.close()  # stop its flusher thread and write the last counts
        if self.exporter is not None:
            self.exporter.close()
            middleware.server.remove(self.exporter)
        self.stopping.set()
        for thread in self._threads:  # they wake on `stopping`; a Redis call ends by timeout
            thread.join(self.config.fetch_timeout + 1)
        try:
            self.heartbeat.clear()
        except redis.RedisError as exc:
            log.warning("could not clear the process record: %s", exc)
        log.info("stopped")
        return clean

    def start_or_abandon(self) -> None:
        """``start()``; one that fails past its startup hooks (a stop meanwhile, Redis
        refusing it, its metrics port taken) closes what it opened, as a stop would: the
        hooks' resources, its metrics port, so that the application, an embedding one above
        all, can start another worker in this process (and a -P child restarted does not
        open them again at each try). Not when a startup hook itself raised."""
        try:
            self.start()
        except StartupHookError:
            self._forget_owner()
            raise
        except (ConfigError, redis.RedisError, StoppedWhileStarting):
            if self.exporter is not None:
                self.exporter.close()
                middleware.server.remove(self.exporter)
                self.exporter = None
            self._forget_owner()
            self.life.shutdown()
            if self.heartbeat.registered:  # the record and lease of a worker that never ran
                with contextlib.suppress(redis.RedisError):
                    self.heartbeat.clear()
            raise

    def _forget_owner(self) -> None:
        """Slots taken in this process from now on (an embedding app's) are no longer this
        worker's, to be freed should it be taken for dead."""
        if renewal.owner == self.identity:
            renewal.owner = ""

    def _hard_deadline(self) -> float:
        """Seconds after a stop signal past which the process is ended whatever it does: the
        jobs' timeout, the application's quiet and shutdown hooks' share, and a margin."""
        return self.config.timeout + stop_budget() + 1.5

    def run(self, install_signals: bool = True) -> bool:
        """Run until TERM/INT or a remote stop; the command-line entry point."""
        if install_signals:
            self._install_signals()
            watchdog.running = self.manager.running_names
            watchdog.start(self._hard_deadline(), watchdog.stall_limit(
                self.config.lease_ttl, self.config.heartbeat_interval))
        if self.stop_requested.is_set():
            log.info("stopped while starting; nothing was fetched")
            return True
        try:
            self.start_or_abandon()
        except redis.RedisError as exc:
            if self.stop_requested.is_set():
                log.info("stopped before Redis could be reached; nothing was fetched")
                return True
            # Redis answered the first beat, then failed: a crash, for the supervisor
            # (systemd's Restart=on-failure, a -P parent) to start the worker again.
            log.error("Redis failed while the worker started (%s); nothing was fetched:"
                      " exiting with status 1", url_problems.readable(exc))
            raise SystemExit(1) from exc
        except StoppedWhileStarting:
            log.info("stopped while its on_startup hooks ran; nothing was fetched")
            return True
        while not self.stop_requested.is_set():
            time.sleep(NAP)
        watchdog.notify_stop()  # no-op when a signal already told it
        # A job stuck in C code can hold the interpreter: a C-level timer ends the process
        # shortly after the deadline no matter what (its jobs stay in progress, recovered).
        try:
            faulthandler.dump_traceback_later(self._hard_deadline(), exit=True)
        except RuntimeError as exc:  # it needs a thread; stopping matters more than the timer
            log.warning("no hard deadline for this shutdown: %s", exc)
        try:
            return self.stop()
        finally:
            faulthandler.cancel_dump_traceback_later()

def embed(config: Config) -> Launcher:
    """Start a worker inside this process (tests, or an app that runs its own jobs).

    Call ``stop()`` on the returned Launcher to shut it down gracefully.
    """
    warn_of_colon_weights(config.queues)
    launcher = Launcher(config, embedded=True)
    launcher.start_or_abandon()
    return launcher
