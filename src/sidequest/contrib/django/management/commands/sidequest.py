"""``python manage.py sidequest``: the worker, with the ``sidequest`` command's flags, over
the ``SIDEQUEST`` settings (flags win, then a ``-C`` file, then the settings), once Django's
system checks pass; ``python manage.py sidequest stats`` (``status``, ``periodic``): the
``sidequest`` command's views of the Redis the settings name. Django's own options
(``-v``/``--verbosity``, ``--traceback``, ``--no-color``, ``--force-color``, ``--settings``,
``--pythonpath``, ``--skip-checks``) are taken too."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import (
    BaseCommand,
    CommandError,
    SystemCheckError,
    handle_default_options,
)
from django.core.management.color import color_style, no_style
from django.db import connections

from sidequest import environ, registry, runner
from sidequest.config import Config
from sidequest.contrib.django import checks, conf
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
#: Celery's commands, typed from habit (`celery -A proj worker`): what they are here.
CELERY = {
    "worker": "python manage.py sidequest is the worker itself, with its flags:"
              " python manage.py sidequest -c 10 -q default",
    "beat": "every worker runs the periodic jobs (sidequest.periodic), with no flag and no"
            " extra process",
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
        # The sidequest command's own parser, so that the worker takes the same flags either
        # way, with Django's options added: its -v/--verbosity N in place of sidequest's -v
        # (which it still is without a number), and sidequest's -V/--version kept.
        parser = runner.parser(prog=f"{os.path.basename(prog_name)} {subcommand}",
                               epilog=EPILOG)
        # The sidequest command's help leaves out the SIDEQUEST setting, which only this
        # command reads (argparse has no public way to reach an option once added).
        parser._option_string_actions["--redis-url"].help = REDIS_URL_HELP
        # Sidequest's -v/--verbose taken out, as argparse's "resolve" conflict handler does
        # (it has no public form for one option), for the -v below to replace it.
        verbose = parser._option_string_actions["-v"]
        parser._handle_conflict_resolve(verbose, [(flag, verbose)
                                                  for flag in list(verbose.option_strings)])
        parser.add_argument("-v", "--verbose", "--verbosity", dest="verbosity", nargs="?",
                            const=2, type=int, choices=(0, 1, 2, 3), metavar="N",
                            help="Django's verbosity: 0 logs at WARNING (no per-job lines), 1"
                                 " at INFO, 2 or 3 at DEBUG; -v alone is 2, sidequest's -v")
        _django_options(parser)
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        # Not Django's execute(): it would call handle() with options that are not the
        # worker's. What it does that matters here (the system checks, the output's colour,
        # --traceback) is done below.
        words = argv[2:]
        if words[:1] == ["run"]:  # the worker spelled out, as `sidequest run`
            words = words[1:]
        elif words and not words[0].startswith("-"):
            sys.exit(self._other_command(words[0], words[1:]))
        args = self.create_parser(argv[0], argv[1]).parse_args(words)
        handle_default_options(args)
        sys.exit(self._colour(args) or self._worker(args))

    def _worker(self, args: argparse.Namespace) -> int:
        registry.LOAD_HINT = LOAD_HINT
        _warn_of_environment()
        _apply_verbosity(args)
        try:
            # Before the checks: the pool check judges the concurrency the worker will run
            # with, and a bad SIDEQUEST is said in one line (the checks would say it too).
            config = runner.config_from_args(args, base=conf.values(),
                                             base_source=conf.SOURCE)
        except ConfigError as exc:
            return _config_error(exc, args.traceback)
        conf.command = conf.Command(config, _concurrency_from(args))
        checked = self._checked(args.skip_checks, args.traceback)
        if checked:
            return checked
        _warn_of_debug()
        return run(config, traceback=args.traceback)

    def _other_command(self, command: str, words: list[str]) -> int:
        """``stats``, ``status`` or ``periodic``; another word is refused with what to run
        instead."""
        if command not in MONITOR:
            print(f"manage.py sidequest: {_unknown(command)}", file=sys.stderr)
            return 2
        # Django's own options, applied by manage.py already: not for the monitor's parser.
        django = _django_options(argparse.ArgumentParser(add_help=False, allow_abbrev=False))
        django.add_argument("-v", "--verbosity", type=int, choices=(0, 1, 2, 3))
        django_args, rest = django.parse_known_args(words)
        if conf.problem is not None:  # the monitor would read the default Redis
            return _config_error(conf.problem, django_args.traceback)
        return (self._colour(django_args)
                or self._checked(django_args.skip_checks, django_args.traceback)
                or monitor(command, rest))

    def _colour(self, args: argparse.Namespace) -> int:
        """--no-color and --force-color, for the system checks' output, as Django's
        execute() applies them."""
        if args.no_color and args.force_color:
            print("manage.py sidequest: the --no-color and --force-color options can't be used"
                  " together", file=sys.stderr)
            return 2
        if args.force_color:
            self.style = color_style(force_color=True)
        elif args.no_color:
            self.style = no_style()
            self.stderr.style_func = None
        return 0

    def _checked(self, skip: bool, traceback: bool = False) -> int:
        """Django's system checks, as its own commands run them: warnings are shown, errors
        stop the command (exit 2, a configuration error). A SIDEQUEST misnamed SIDEKIQ would
        otherwise leave the worker on the default Redis without a word."""
        if skip or not self.requires_system_checks:
            return 0
        try:
            self.check()
        except SystemCheckError as exc:
            if traceback:  # Django's --traceback: the error as raised
                raise
            self.stderr.write(str(exc), lambda text: text)
            return 2
        return 0

    def handle(self, *args: Any, **options: Any) -> None:
        # Only reached through call_command(), which expects Django's own options.
        raise CommandError("run the worker from the command line: python manage.py sidequest "
                           "[flags]; in-process workers: sidequest.worker.embed()")


def _django_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every Django command takes that mean something here (--settings and
    --pythonpath: manage.py has applied them already; -v/--verbosity is added apart, as the
    worker's parser has a -v of its own)."""
    parser.add_argument("--settings", help="Django settings module")
    parser.add_argument("--pythonpath", help="a directory to add to sys.path")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full stack trace of a configuration error")
    parser.add_argument("--no-color", action="store_true",
                        help="don't colorize the system checks' output")
    parser.add_argument("--force-color", action="store_true",
                        help="colorize the system checks' output even when not a terminal")
    parser.add_argument("--skip-checks", action="store_true",
                        help="start without running Django's system checks")
    return parser


def _apply_verbosity(args: argparse.Namespace) -> None:
    """Django's verbosity as the worker's log level; --log-level, if given, wins."""
    args.verbose = args.verbosity is not None and args.verbosity >= 2
    if args.verbosity == 0 and args.log_level is None:
        args.log_level = "WARNING"


def _concurrency_from(args: argparse.Namespace) -> str:
    """Where the worker's concurrency is set, for the pool check's hint."""
    if args.concurrency is not None:
        return "the worker's -c (python manage.py sidequest -c N)"
    if args.config:
        return f"the concurrency that {args.config} (-C) or SIDEQUEST sets"
    return checks.SETTING


def _config_error(exc: ConfigError, traceback: bool) -> int:
    """A configuration error, said in one line (exit 2), or raised with --traceback."""
    if traceback:
        raise exc
    print(f"manage.py sidequest: {exc}", file=sys.stderr)
    return 2


def _unknown(command: str) -> str:
    if command in CELERY:
        return f"{command} is Celery's command; here {CELERY[command]}"
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


def run(config: Config, *, traceback: bool = False) -> int:
    try:
        # Forked worker processes (-P) must not share the parent's database sockets.
        connections.close_all()
        return runner.run_worker(config, config.processes, app_loaded=True)
    except ConfigError as exc:
        return _config_error(exc, traceback)
    except KeyboardInterrupt:
        return 130


#: DEBUG = True in a worker: said once, at its start (not a system check: a web process in
#: development runs with it, rightly).
DEBUG_WARNING = ("manage.py sidequest: warning: settings.DEBUG is True, so Django keeps every"
                 " database query of a job in memory (up to 9,000 per worker thread, until the"
                 " thread's next job) and runs slower; set DEBUG = False for workers")


def _warn_of_debug() -> None:
    if settings.DEBUG:
        print(DEBUG_WARNING, file=sys.stderr)


def _warn_of_environment() -> None:
    """A variable that looks like one of Sidequest's but is not (a misspelt one is ignored)."""
    for warning in environ.near_misses(os.environ):
        print(f"manage.py sidequest: warning: {warning}", file=sys.stderr)
