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

import difflib
import logging
import os
import shlex
import sys

from sidequest import environ, interrupts, std_streams
from sidequest.config import default_file
from sidequest.errors import ConfigError
from sidequest.runner import config_from_args, parser, run_worker
from sidequest.web_flags import WEB_EXTRA, web_parser

COMMANDS = ("run", "dev", "stats", "status", "periodic", "web")
#: Other tools' commands that newcomers type first (rq, Celery): what to run here.
_FOREIGN_COMMANDS = {
    "worker": "the worker is this command itself: sidequest -r yourapp.jobs -q default",
    "info": "'sidequest stats' shows the totals and queues, 'sidequest status' the processes"
            " too",
    "beat": "every worker runs the periodic jobs (sidequest.periodic): no separate process",
    "scheduler": "every worker moves scheduled jobs and runs the periodic ones: no separate"
                 " process",
    "cron": "every worker runs the periodic jobs (sidequest.periodic); 'sidequest periodic'"
            " lists them",
}


def _unknown_command(word: str) -> str:
    if word in _FOREIGN_COMMANDS:
        return f"unknown command {word!r}; {_FOREIGN_COMMANDS[word]}"
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    hint = f"did you mean 'sidequest {close[0]}'? " if close else ""
    if not close and any(mark in word for mark in "./:"):  # a module, file or app factory
        hint = f"to load your jobs from it, pass -r {shlex.quote(word)}; "
    return (f"unknown command {word!r}; {hint}the commands are {', '.join(COMMANDS)}"
            " (none: run), e.g. sidequest -r myapp.jobs")


def _web(argv: list[str]) -> int:
    try:
        from sidequest.web.server import main as web_main
    except ImportError as exc:  # the web extra is optional
        web_parser().parse_args(argv)  # --help (or a bad flag) is answered all the same
        hint = "" if "sidequest[web]" in str(exc) else (
            f"; the dashboard needs its extra: {WEB_EXTRA}")
        print(f"sidequest web: {exc}{hint}", file=sys.stderr)
        return 2
    return web_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    std_streams.make_usable()
    interrupts.install()
    command = "run"
    prog = "sidequest run" if argv[:1] == ["run"] else "sidequest"  # as the user typed it
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    elif argv and not argv[0].startswith("-"):
        print(f"sidequest: {_unknown_command(argv[0])}", file=sys.stderr)
        return 2
    for warning in environ.near_misses(os.environ):
        print(f"sidequest: warning: {warning}", file=sys.stderr)
    try:
        return _dispatch(command, argv, prog)
    except ConfigError as exc:
        print(f"sidequest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(command: str, argv: list[str], prog: str = "sidequest") -> int:
    if command in ("stats", "status", "periodic"):
        from sidequest.monitor import main as monitor_main

        return monitor_main(command, argv)
    if command == "dev":
        from sidequest.dev import main as dev_main

        return int(dev_main(argv))
    if command == "web":
        return _web(argv)
    args = parser(prog).parse_args(argv)
    # Without -C, ./sidequest.toml if there, as Sidekiq reads config/sidekiq.yml. Only here:
    # `manage.py sidequest` has the project's settings for that, and `sidequest dev` its own.
    found = default_file() if args.config is None else None
    args.config = args.config or found
    config = config_from_args(args)
    code = run_worker(config, config.processes, settings_file=found)
    if code:
        # A worker process of -P was killed: no thread may hold the interpreter at exit.
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
