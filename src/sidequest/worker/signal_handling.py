"""How a worker process hears signals: TERM/INT/TSTP/TTIN from the OS (through the inbox,
which drops a supervised process's echoes) and the same names sent through Redis (the
dashboard, the API, Sidekiq's Web UI).

A mixin of the Launcher, which sets every attribute below and defines quiet().
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from sidequest import interrupts
from sidequest.config import Config
from sidequest.worker import logs
from sidequest.worker.inbox import Inbox

log = logging.getLogger("sidequest")


class SignalHandling:
    config: Config
    embedded: bool
    stopped_on_request: bool
    stop_requested: threading.Event
    inbox: Inbox
    _heard: Callable[[str], None] | None
    _stop_signals: int

    def quiet(self) -> None:
        raise NotImplementedError  # the Launcher's

    def remote_signal(self, name: str) -> None:
        """A signal read from ``<identity>-signals`` (the dashboard, the API, Sidekiq's Web
        UI): a stop asked that way is for good, and a ``-P`` supervisor starts no
        replacement (``stopped_on_request``)."""
        if name in ("TERM", "INT") and not self.embedded:
            self.stopped_on_request = True
        if self._heard is not None:
            self._heard(name)
        self.signal(name)

    def signal(self, name: str) -> None:
        """Act on a signal name, whether from the OS or from ``<identity>-signals``."""
        if self.embedded and name in ("TSTP", "TERM", "INT"):
            # The application that embeds the worker decides when it quiets or stops, as
            # with Sidekiq's embedded mode; the API and dashboard do not offer it either.
            log.warning("ignoring a remote %s: this worker is embedded in an application,"
                        " which stops it (Launcher.stop())", name)
        elif name == "TSTP":
            self.quiet()
        elif name in ("TERM", "INT"):
            self.stop_requested.set()
        elif name == "TTIN":
            logs.dump_threads()
        else:
            log.warning("ignoring unknown signal %r", name)

    def _os_stop(self, name: str) -> None:
        """TERM/INT from the OS: the first stops gracefully; a second says so and how to force
        it; a third forces it. Forcing leaves running jobs in this process's in-progress list,
        from which the other workers (or the next start) recover them, as after a crash."""
        self._stop_signals += 1
        if self._stop_signals == 1:
            self.signal(name)
        elif self._stop_signals == 2:
            log.warning("a graceful stop is in progress: waiting up to %gs for running jobs."
                        " Press Ctrl-C again (or send TERM) to stop now; their jobs will be run"
                        " again by another worker", self.config.timeout)
        else:
            log.warning("stopping now; unfinished jobs stay in progress and will be recovered")
            logs.flush()
            os._exit(1)

    def _os_act(self, name: str) -> None:
        """A signal from the OS, once the inbox has dropped a supervised process's echoes
        (one quiet is enough, and a thread dump printed twice is noise)."""
        if name in ("TERM", "INT"):
            self._os_stop(name)
        else:
            self.signal(name)

    def _install_signals(self) -> None:
        handlers: dict[int, Callable[[int, Any], None]] = {
            signal.SIGTERM: lambda *_: self.inbox.arrive("TERM"),
            signal.SIGINT: lambda *_: self.inbox.arrive("INT"),
        }
        if hasattr(signal, "SIGTSTP"):
            handlers[signal.SIGTSTP] = lambda *_: self.inbox.arrive("TSTP")
        if hasattr(signal, "SIGTTIN"):
            handlers[signal.SIGTTIN] = lambda *_: self.inbox.arrive("TTIN")
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        if interrupts.take():  # a Ctrl-C during start-up that Python had to drop
            self.inbox.arrive("INT")
        if interrupts.take_quiet():  # a TSTP while the app loaded (or the child forked)
            self.inbox.arrive("TSTP")
