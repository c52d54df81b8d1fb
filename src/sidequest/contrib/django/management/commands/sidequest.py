"""``python manage.py sidequest``: the worker, with the ``sidequest`` command's flags, over
the ``SIDEQUEST`` settings (flags win, then a ``-C`` file, then the settings)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, handle_default_options
from django.db import connections

from sidequest import environ, registry, runner
from sidequest.contrib.django import conf
from sidequest.errors import ConfigError

#: The sidequest command's other commands (stats, web, ...) are not this one's: the
#: dashboard is mounted in the project's urls, and `sidequest stats` reads the same Redis.
EPILOG = ("Example: python manage.py sidequest -c 10 -q default -q low. A flag wins over the"
          " -C file, which wins over the SIDEQUEST setting, which wins over the defaults"
          " shown. The jobs are found in each installed app's jobs module; -r adds more.")

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
        parser.add_argument("--settings", help="Django settings module")
        parser.add_argument("--pythonpath", help="a directory to add to sys.path")
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        args = self.create_parser(argv[0], argv[1]).parse_args(argv[2:])
        handle_default_options(args)
        sys.exit(run(args))

    def handle(self, *args: Any, **options: Any) -> None:
        # Only reached through call_command(), which expects Django's own options.
        raise CommandError("run the worker from the command line: python manage.py sidequest "
                           "[flags]; in-process workers: sidequest.worker.embed()")


def run(args: argparse.Namespace) -> int:
    registry.LOAD_HINT = LOAD_HINT
    for warning in environ.near_misses(os.environ):
        print(f"manage.py sidequest: warning: {warning}", file=sys.stderr)
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
