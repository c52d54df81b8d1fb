"""Per-process Prometheus metrics (``--metrics-port``): what this worker process did and is
doing, served over HTTP by prometheus-client for a scraper that watches each process (a pod,
a systemd unit) rather than the whole Redis (the dashboard's ``/prometheus`` does that).

Counters and a run-time histogram per job class and queue are updated by a server middleware,
so they count from the process's start, as Prometheus counters should (a try that a full rate
limiter sent back is counted apart, not as a run); the busy threads are read at scrape time;
prometheus-client adds the process's memory, CPU and open files.
Imported only when the flag is set: the worker runs without prometheus-client otherwise.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

from sidequest.errors import ConfigError
from sidequest.limiter import rescheduled
from sidequest.metrics import Timing
from sidequest.payload import DROPPED, job_class

#: Run-time histogram buckets, seconds: a few ms to a few minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class PortInUse(ConfigError):
    """The metrics port is taken. At a worker's start, a setting to fix; for a ``-P`` child
    started in place of one that died, possibly a moment's clash (the supervisor retries)."""


class Exporter(Timing):
    """The registry, the middleware that feeds it (``observe``, called by ``Timing`` around
    each run), and the HTTP server that serves it."""

    def __init__(self, identity: str, concurrency: int, busy: Callable[[], int]) -> None:
        try:
            import prometheus_client as prom  # noqa: PLC0415 - an extra, only with the flag
        except ImportError as exc:
            raise ConfigError("--metrics-port needs prometheus-client: "
                              "pip install 'sidequest[prometheus]'") from exc
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        prom.ProcessCollector(registry=self.registry)
        labels = ["class", "queue"]
        self.processed = prom.Counter("sidequest_worker_processed", "Jobs this process ran, "
                                      "failures included", labels, registry=self.registry)
        self.failed = prom.Counter("sidequest_worker_failed", "Jobs this process ran that "
                                   "raised", labels, registry=self.registry)
        self.overlimit = prom.Counter("sidequest_worker_overlimit", "Tries of jobs this "
                                      "process sent back because a rate limiter was full "
                                      "(counted here only: not processed, not timed)", labels,
                                      registry=self.registry)
        self.duration = prom.Histogram("sidequest_worker_job_duration_seconds", "Run time of "
                                       "this process's jobs, failures included", labels,
                                       buckets=BUCKETS, registry=self.registry)
        prom.Gauge("sidequest_worker_busy", "Jobs running in this process now",
                   registry=self.registry).set_function(busy)
        prom.Gauge("sidequest_worker_concurrency", "Processor threads of this process",
                   registry=self.registry).set(concurrency)
        prom.Info("sidequest_worker", "This worker process", registry=self.registry).info(
            {"identity": identity, "pid": str(os.getpid())})
        self._server: Any = None

    def serve(self, host: str, port: int) -> None:
        try:
            served = self._prom.start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise PortInUse(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc}); "
                            "choose a free port (with -P N, process i takes PORT + i)"
                            ) from exc
        self._server = served[0] if isinstance(served, tuple) else None
        # A process a job forks (multiprocessing's default on Linux) would inherit the
        # listening socket and keep the port after this process died, answering nothing:
        # the process started in its place could not listen there.
        # A weak reference: a fork hook cannot be removed, and would keep every exporter
        # of a process that embeds workers one after another.
        drop = weakref.WeakMethod(self._drop_in_child)
        os.register_at_fork(after_in_child=lambda: (method := drop()) and method())

    def _drop_in_child(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.socket.close()  # no shutdown(): its serving thread is not in this process

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def observe(self, payload: dict[str, Any], queue: str, seconds: float,
                failed: bool) -> None:
        labels = (job_class(payload), queue)
        if rescheduled(payload):
            # A few ms that found the limiter full: in the run counts and the histogram they
            # would pass for fast successes, and hide the real run time of the class.
            self.overlimit.labels(*labels).inc()
            return
        if DROPPED in payload:  # expired or cancelled before it started: no run to time
            return
        self.processed.labels(*labels).inc()
        if failed:
            self.failed.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)
