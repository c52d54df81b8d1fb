"""``python manage.py sidequest``: the worker, with the ``sidequest`` command's flags, over
the ``SIDEQUEST`` settings (flags win, then a ``-C`` file, then the settings), once Django's
system checks pass; ``python manage.py sidequest stats`` (``status``, ``periodic``): the
``sidequest`` command's views of the Redis the settings name."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    SystemCheckError,
    handle_default_options,
)
from django.db import connections

from sidequest import environ, registry, runner
from sidequest.contrib.django import conf
from sidequest.errors import ConfigError

#: The sidequest command's views of Redis, run here over the Redis that SIDEQUEST names
#: (the app's ready() configured it), which plain `sidequest stats` does not read.
MONITOR = ("stats", "status", "periodic")
#: The sidequest command's other commands, which a Django project has another way.
ELSEWHERE = {
    "web": "the dashboard is served by your project: add path('sidequest/',"
           " include('sidequest.contrib.django.urls')) to your urls (staff users see it)",
    "dev": "sidequest dev starts a private Redis for a project that has none; here, set"
           " SIDEQUEST['redis_url'] and run python manage.py sidequest",
}
COMMANDS = ("run", *MONITOR)

EPILOG = ("Example: python manage.py sidequest -c 10 -q default -q low. A flag wins over the"
          " -C file, which wins over the SIDEQUEST setting, which wins over the defaults"
          " shown. The jobs are found in each installed app's jobs module; -r adds more."
          " Django's system checks run first (--skip-checks skips them). Also: python"
          " manage.py sidequest stats | status [--watch] | periodic, over the same Redis.")

#: What a worker meeting an unknown job class says to do: here each installed app's jobs.py
#: is imported at startup, so that is where a job belongs (-r for a module elsewhere).
LOAD_HINT = ("define it in an installed app's jobs.py (each is imported at startup) or pass its"
             " module to the worker (python manage.py sidequest -r yourapp.module)")

#: --redis-url's default, in the order that wins (the SIDEQUEST setting included).
REDIS_URL_HELP = ("Redis URL (default: the -C file's redis_url, SIDEQUEST['redis_url'] in the"
                  " Django settings, $SIDEQUEST_REDIS_URL, $REDIS_URL, redis://localhost:6379/0)")


class Command(BaseCommand):
    help = "Run a Sidequest worker for this project's jobs (the flags of `sidequest`)."

    def create_parser(self, prog_name: str, subcommand: str,
                      **kwargs: Any) -> argparse.ArgumentParser:
        # The sidequest command's own parser: Django's -v/--version would clash with its
        # -v (verbose) and -V, and the worker should take the same flags either way.
        parser = runner.parser(prog=f"{os.path.basename(prog_name)} {subcommand}",
                               epilog=EPILOG)
        # The sidequest command's help leaves out the SIDEQUEST setting, which only this
        # command reads (argparse has no public way to reach an option once added).
        parser._option_string_actions["--redis-url"].help = REDIS_URL_HELP
        _django_options(parser)
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        # Not Django's execute(): its -v and --version would clash with the worker's flags.
        # What it does that matters here, the system checks, is done by _checked.
        words = argv[2:]
        if words[:1] == ["run"]:  # the worker spelled out, as `sidequest run`
            words = words[1:]
        elif words and not words[0].startswith("-"):
            sys.exit(self._other_command(words[0], words[1:]))
        args = self.create_parser(argv[0], argv[1]).parse_args(words)
        handle_default_options(args)
        sys.exit(self._checked(args.skip_checks) or run(args))

    def _other_command(self, command: str, words: list[str]) -> int:
        """``stats``, ``status`` or ``periodic``; another word is refused with what to run
        instead."""
        if command not in MONITOR:
            print(f"manage.py sidequest: {_unknown(command)}", file=sys.stderr)
            return 2
        # Django's own options, applied by manage.py already: not for the monitor's parser.
        django_args, rest = _django_options(argparse.ArgumentParser(
            add_help=False, allow_abbrev=False)).parse_known_args(words)
        return self._checked(django_args.skip_checks) or monitor(command, rest)

    def _checked(self, skip: bool) -> int:
        """Django's system checks, as its own commands run them: warnings are shown, errors
        stop the command (exit 2, a configuration error). A SIDEQUEST misnamed SIDEKIQ would
        otherwise leave the worker on the default Redis without a word."""
        if skip or not self.requires_system_checks:
            return 0
        try:
            self.check()
        except SystemCheckError as exc:
            self.stderr.write(str(exc), lambda text: text)
            return 2
        return 0

    def handle(self, *args: Any, **options: Any) -> None:
        # Only reached through call_command(), which expects Django's own options.
        raise CommandError("run the worker from the command line: python manage.py sidequest "
                           "[flags]; in-process workers: sidequest.worker.embed()")


def _django_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every Django command takes that mean something here (--settings and
    --pythonpath: manage.py has applied them already)."""
    parser.add_argument("--settings", help="Django settings module")
    parser.add_argument("--pythonpath", help="a directory to add to sys.path")
    parser.add_argument("--skip-checks", action="store_true",
                        help="start without running Django's system checks")
    return parser


def _unknown(command: str) -> str:
    if command in ELSEWHERE:
        return f"{command} is not a command of manage.py sidequest: {ELSEWHERE[command]}"
    close = difflib.get_close_matches(command, COMMANDS, n=1, cutoff=0.6)
    hint = f"did you mean 'python manage.py sidequest {close[0]}'? " if close else ""
    return (f"unknown command {command!r}; {hint}the commands are {', '.join(COMMANDS)} (none:"
            " run), e.g. python manage.py sidequest -c 10")


def monitor(command: str, argv: list[str]) -> int:
    """``sidequest stats`` (status, periodic) over the Redis the app configured from
    SIDEQUEST; --redis-url and -C still win, as they do for the worker. Not ./sidequest.toml,
    which the worker does not read here either."""
    from sidequest.monitor import main as monitor_main  # noqa: PLC0415 - only for these

    _warn_of_environment()
    try:
        return monitor_main(command, argv, settings_file=False)
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    registry.LOAD_HINT = LOAD_HINT
    _warn_of_environment()
    try:
        config = runner.config_from_args(args, base=conf.values(), base_source=conf.SOURCE)
        # Forked worker processes (-P) must not share the parent's database sockets.
        connections.close_all()
        return runner.run_worker(config, config.processes, app_loaded=True)
    except ConfigError as exc:
        print(f"manage.py sidequest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _warn_of_environment() -> None:
    """A variable that looks like one of Sidequest's but is not (a misspelt one is ignored)."""
    for warning in environ.near_misses(os.environ):
        print(f"manage.py sidequest: warning: {warning}", file=sys.stderr)
