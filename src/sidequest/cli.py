"""The ``sidequest`` command: pick the subcommand, then hand over to the module that runs it
(the worker's flags, config and launch are in runner.py).

    sidequest -r myapp.jobs -c 10 -q critical,3 -q default,2 -q low
    sidequest run ...      the same, spelled out
    sidequest dev          worker + a private Redis when none is configured, for development
    sidequest stats        totals and queue sizes; sidequest status: processes and queues
    sidequest periodic     periodic entries: schedule, time zone, next and last run
    sidequest web          the dashboard (needs the web extra: pip install 'sidequest[web]')
"""

from __future__ import annotations

import logging
import os
import sys

from sidequest import interrupts
from sidequest.errors import ConfigError
from sidequest.runner import config_from_args, parser, run_worker


def _web(argv: list[str]) -> int:
    try:
        from sidequest.web.server import main as web_main
    except ImportError as exc:  # the web extra is optional
        hint = "" if "sidequest[web]" in str(exc) else (
            "; the dashboard needs its extra: pip install 'sidequest[web]'")
        print(f"sidequest web: {exc}{hint}", file=sys.stderr)
        return 2
    return web_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    interrupts.install()
    command = "run"
    if argv and argv[0] in ("run", "dev", "stats", "status", "periodic", "web"):
        command = argv.pop(0)
    try:
        if command in ("stats", "status", "periodic"):
            from sidequest.monitor import main as monitor_main

            return monitor_main(command, argv)
        if command == "dev":
            from sidequest.dev import main as dev_main

            return int(dev_main(argv))
        if command == "web":
            return _web(argv)
        args = parser().parse_args(argv)
        config = config_from_args(args)
        code = run_worker(config, config.processes)
        if code:
            # A worker process of -P was killed: no thread may hold the interpreter at exit.
            logging.shutdown()
            os._exit(code)
        return code
    except ConfigError as exc:
        print(f"sidequest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
