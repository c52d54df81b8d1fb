"""The worker command's parts: its flags, the Config they make, and running the worker (one
Launcher, or the -P supervisor and its children); app_loader imports the app's jobs.

``sidequest`` (cli.py), ``sidequest dev`` (dev.py) and Django's ``manage.py sidequest`` build
on these; nothing here dispatches between subcommands.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import math
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from sidequest import (
    __version__,
    connection,
    environ,
    interrupts,
    load_checks,
    registry,
    std_streams,
)
from sidequest.app_loader import factory_hint, inside_package, load_app
from sidequest.config import (
    LOG_LEVELS,
    Config,
    build,
    level_name,
    settings_arg,
)
from sidequest.errors import ConfigError
from sidequest.queue_specs import parse_queue, warn_of_colon_weights
from sidequest.urls import redacted

log = logging.getLogger("sidequest")


#: Config.extra's key for "-e was given": the flag then wins over an inherited SIDEQUEST_ENV.
ENVIRONMENT_FLAG = "environment_flag"


class _Parser(argparse.ArgumentParser):
    """argparse, with a "did you mean" for a misspelt flag (as the config file has)."""

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            words = message[len(prefix):].split()
            hints = [_foreign_hint(word) or _flag_hint(word, list(self._option_string_actions))
                     for word in words]
            # A bare word after an unknown flag is that flag's value (--url redis://...), not
            # a queue; and a queue's name is a plain word.
            bare = [word for i, word in enumerate(words) if not word.startswith("-")
                    and not (i and words[i - 1].startswith("-") and "=" not in words[i - 1])
                    and re.fullmatch(r"[\w.:-]+", word)]
            if bare:  # `rq worker high default low`: queues named after the flags
                hints.append("each queue takes a -q of its own, in the order they are served:"
                             f" {' '.join(f'-q {word}' for word in bare)}")
            message += "".join(f"; {hint}" for hint in hints if hint)
        elif message.startswith("argument -P/--processes: invalid int value"):
            message += f"; {_SIDEKIQ_FLAGS['-P']}"
        super().error(message)


def _foreign_hint(word: str) -> str | None:
    """For a Sidekiq or Celery flag however written: ``--logfile=x``, ``-Lx``, ``-dv``."""
    flag = word.split("=", 1)[0]
    return _FOREIGN_FLAGS.get(flag) or (_FOREIGN_FLAGS.get(flag[:2])
                                        if not flag.startswith("--") else None)


#: Sidekiq flags that Sidequest has not, or has with another meaning: what to do instead.
_SIDEKIQ_FLAGS = {
    "-P": "-P is the number of worker processes here (-P 4), neither Sidekiq's pidfile (run"
          " the worker in the foreground under systemd, Docker or Kubernetes) nor Celery's"
          " pool (jobs run in -c threads)",
    "-d": "-d (daemonize) is not offered, as in Sidekiq 6: run the worker in the foreground"
          " under systemd, Docker or Kubernetes",
    "--daemon": "--daemon is not offered, as in Sidekiq 6: run the worker in the foreground"
                " under systemd, Docker or Kubernetes",
    "-L": "-L (logfile) is not offered, as in Sidekiq 6: logs go to standard output; redirect"
          " it, or let systemd or Docker keep them",
    "--logfile": "--logfile is not offered, as in Sidekiq 6: logs go to standard output;"
                 " redirect it, or let systemd or Docker keep them",
    # rq's worker flags.
    "--burst": "--burst (rq) is not offered: the worker runs until it is stopped; to drain"
               " the queues and exit, see docs/coming-from-rq.md (Draining, then exiting)",
    "--url": "--url (rq) is --redis-url here",
    "-u": "-u (rq's Redis URL) is --redis-url here",
    "--with-scheduler": "--with-scheduler (rq) is not needed: every worker moves scheduled"
                        " jobs and runs the periodic ones",
}

_CELERY_APP = ("is Celery's app; here -r names the module that defines your jobs:"
               " -r yourapp.jobs (repeat -r for several)")
_CELERY_QUEUES = ("is Celery's queue list; here it is -q, once per queue:"
                  " -q critical -q default")
_CELERY_LEVEL = "is Celery's log level; here it is --log-level (info, warning...) or -v"
_CELERY_BEAT = ("is Celery's beat; here every worker runs the periodic jobs"
                " (sidequest.periodic), with no flag and no extra process")

#: Celery flags a newcomer types first: what they are called here.
_CELERY_FLAGS = {
    "-A": f"-A {_CELERY_APP}", "--app": f"--app {_CELERY_APP}",
    "-Q": f"-Q {_CELERY_QUEUES}", "--queues": f"--queues {_CELERY_QUEUES}",
    "-l": f"-l {_CELERY_LEVEL}", "--loglevel": f"--loglevel {_CELERY_LEVEL}",
    "--pool": "--pool is Celery's; here jobs run in -c threads, and -P N forks N processes of"
              " them (for CPU-bound jobs)",
    "--autoscale": "--autoscale is Celery's; here -c sets the threads of a process and -P the"
                   " processes",
    "-B": f"-B {_CELERY_BEAT}", "--beat": f"--beat {_CELERY_BEAT}",
    "-n": "-n is Celery's node name; here -g (--tag) labels the process in the dashboard",
    "--hostname": "--hostname is Celery's node name; here -g (--tag) labels the process in"
                  " the dashboard",
}

_FOREIGN_FLAGS = {**_SIDEKIQ_FLAGS, **_CELERY_FLAGS}


def _flag_hint(word: str, flags: list[str]) -> str:
    name = word.split("=", 1)[0]
    if not name.startswith("-"):
        return ""
    close = difflib.get_close_matches(name, flags, n=1, cutoff=0.75)
    return f"did you mean {close[0]} (for {name})?" if close else ""


EPILOG = ("Commands: run (default), dev, stats, status [--watch], periodic, web."
          " Example: sidequest -r myapp.jobs -c 10 -q default. A flag wins over the -C file,"
          " which wins over the defaults shown; without -C, ./sidequest.toml (or"
          " ./config/sidequest.toml) is read if there.")


def parser(prog: str = "sidequest", epilog: str = EPILOG) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Run Sidequest workers (Sidekiq-compatible background jobs).",
        epilog=epilog,
    )
    parser.add_argument("-r", "--require", action="append", metavar="MODULE_OR_FILE",
                        help="module (myapp.jobs) or .py file that defines your jobs, or an app"
                             " factory that imports them (myapp:create_app()); repeatable")
    parser.add_argument("-c", "--concurrency", type=int, help="processor threads (default 5)")
    parser.add_argument("--async-concurrency", type=int, metavar="N",
                        help="async def jobs running at once on the event loop (default 100)")
    parser.add_argument("--max-memory", type=int, metavar="MB",
                        help="past this RSS, finish running jobs and exit for the supervisor"
                             " (-P restarts it)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve this process's Prometheus metrics on PORT (-P N: PORT+i)")
    parser.add_argument("--metrics-host", metavar="HOST",
                        help="address for --metrics-port (default 0.0.0.0)")
    parser.add_argument("-P", "--processes", type=int, default=None, metavar="N",
                        help="worker processes to fork, each with -c threads (default 1)")
    parser.add_argument("-q", "--queue", action="append", metavar="NAME[,WEIGHT]",
                        help="queue to work on, in priority order, optional weight; repeatable")
    parser.add_argument("-t", "--timeout", type=float, help="shutdown timeout seconds (25)")
    parser.add_argument("-C", "--config", metavar="FILE", type=settings_arg,
                        help="TOML configuration file")
    parser.add_argument("-e", "--environment", help="application environment name")
    parser.add_argument("-g", "--tag", help="tag shown with this process in the dashboard")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    # Any case, and warn for WARNING: `--log-level info` is how Python and Celery spell it.
    parser.add_argument("--log-level", choices=LOG_LEVELS, type=level_name,
                        help="log level (INFO; WARNING drops the per-job lines)")
    parser.add_argument("--log-format", choices=["text", "json"], help="log line format")
    parser.add_argument("--redis-url", help="Redis URL (default: the -C file's redis_url,"
                        " $SIDEQUEST_REDIS_URL, $REDIS_URL, redis://localhost:6379/0)")
    parser.add_argument("-V", "--version", action="version", version=f"sidequest {__version__}")
    return parser


def config_from_args(args: argparse.Namespace, base: Mapping[str, Any] | None = None,
                     base_source: str = "") -> Config:
    """The flags over the config file over ``base`` (a framework's settings, see build())."""
    queues = tuple(parse_queue(q) for q in args.queue) if args.queue else None
    if args.redis_url and redacted(args.redis_url) != args.redis_url:
        print("sidequest: warning: the Redis password in --redis-url can be read by every user"
              " of this machine (ps); give the URL in SIDEQUEST_REDIS_URL or in the -C file's"
              " redis_url instead", file=sys.stderr, flush=True)
    return build(
        args.config,
        base=base,
        base_source=base_source,
        require=tuple(args.require) if args.require else None,
        concurrency=args.concurrency,
        async_concurrency=args.async_concurrency,
        max_memory=args.max_memory,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        queues=queues,
        timeout=args.timeout,
        environment=args.environment,
        tag=args.tag,
        log_level=args.log_level,
        log_format=args.log_format,
        redis_url=args.redis_url,
        verbose=args.verbose or None,  # unset: the file's value, if any
        processes=args.processes,
        extra={ENVIRONMENT_FLAG: True} if args.environment is not None else None,
    )


def run_worker(config: Config, processes: int = 1, *, app_loaded: bool = False,
               settings_file: str | None = None) -> int:
    """Run the worker; ``app_loaded``: the jobs are imported already (a framework's command
    did it), so no ``-r`` is needed. ``settings_file``: a settings file read without -C
    (config.default_file()), named in the log so that its settings are no surprise."""
    from sidequest.worker import Launcher, sharding
    from sidequest.worker.logs import setup
    from sidequest.worker.threads import use_batch_scheduling

    std_streams.make_usable()  # again: a framework's command (manage.py) comes here directly
    interrupts.hold_quiet()  # a TSTP while the app loads quiets the worker once it runs
    interrupts.hold_dump()  # and a TTIN says where it is, rather than freeze it

    if config.batch_scheduling:  # before any thread (the log writer's too) or fork: they
        use_batch_scheduling()  # inherit the policy
    setup(config.log_level, config.log_format)
    if settings_file:
        log.info("settings from %s", settings_file)
    warn_of_colon_weights(config.queues)
    _export_environment(config)
    if not config.require and not app_loaded:
        _nothing_to_load(config)
    loaded = load_app(config.require)  # once, before any fork: children share the modules
    _warn_if_no_jobs(config.require, loaded)
    for problem in load_checks.problems(loaded):
        log.warning("%s", problem)
    misplaced = inside_package(config.require)
    if misplaced:
        # Not only a warning: such a worker fails every job the application pushes (its
        # names lack the package), and rewrites the periodic entries under the short names.
        raise ConfigError(misplaced)
    _check_memory_limit(config.max_memory)  # before any fork: each child would start as big
    if config.redis_url:  # after the app, so the flag wins over a configure() in its code
        _warn_if_overriding(config.redis_url)
        connection.set_url(config.redis_url)
    if config.shards or config.shard_queues:
        connection.set_shards(config.shards, config.shard_queues)
    plan = sharding.plan(config)
    if processes > 1 or len(plan) > 1:
        return _supervise(config, processes, plan)
    _warn_if_init(os.getpid())
    shard, own = plan[0]
    connection.use_shard(shard)
    if not Launcher(own).run():
        # Jobs were still running at the deadline and were pushed back: a graceful stop all
        # the same, so exit 0 as Sidekiq does (supervisors restart a process that exits 1).
        # Their threads must not hold the interpreter at exit.
        logging.shutdown()
        os._exit(0)
    return 0


def _nothing_to_load(config: Config) -> None:
    """No -r and no settings file's require: refused (ConfigError), unless the settings file
    has periodic entries to push."""
    served = ", ".join(q for q, _ in config.queues)
    pushed_to = {str(table.get("queue") or "default") for table in config.periodic}
    if config.periodic and pushed_to & set(config.queue_names):
        raise ConfigError(f"no -r given: this worker loads no job class, yet it would take the"
                          f" jobs its settings file's periodic entries push to"
                          f" {', '.join(sorted(pushed_to & set(config.queue_names)))} and fail"
                          f" them: pass -r yourapp.jobs, or, to push the entries only (for a"
                          f" Ruby app, say), serve a queue no one pushes to (-q periodic-only)")
    if config.periodic:
        # Pushing a settings file's periodic entries (for a Ruby app's jobs, say) needs no
        # job class here; the jobs it would take from its queues it cannot run.
        log.warning("no -r given: no job classes are loaded, so this worker fails every job it"
                    " takes from %s; to push the settings file's periodic entries only, give it"
                    " a queue no one pushes to (-q periodic-only)", served)
    else:
        # Not only a warning: such a worker took jobs from its queues and failed every one
        # (started from the wrong directory, where no sidequest.toml names the app, say).
        raise ConfigError(f"no -r given and no settings file names your jobs (require = [...]),"
                          f" so this worker could run none of the jobs it would take from"
                          f" {served}: pass -r yourapp.jobs,"
                          f" from your project's root (the current directory is {os.getcwd()})")


def _warn_if_init(pid: int) -> None:
    """A lone worker as a container's first process: the kernel hands it every orphan."""
    if pid == 1:
        log.warning("running as PID 1 (a container's first process): processes your jobs leave"
                    " behind (a shell's background command) are never reaped and pile up as"
                    " zombies, and HUP is ignored; run the worker under an init (docker run"
                    " --init, tini) or with -P 2, whose parent reaps them")


def _export_environment(config: Config) -> None:
    """SIDEQUEST_ENV, for the app to read. An -e flag wins over an inherited value, as
    Sidekiq's -e overwrites RAILS_ENV: typed on this command, it is meant for this run. The
    -C file's environment only fills it in when unset, so a shell's value still wins there."""
    inherited = os.environ.get(environ.APP_ENV)
    if config.extra.get(ENVIRONMENT_FLAG) and inherited not in (None, config.environment):
        log.info("-e %s replaces $%s=%s from the environment", config.environment,
                 environ.APP_ENV, inherited)
        os.environ[environ.APP_ENV] = config.environment
    else:
        os.environ.setdefault(environ.APP_ENV, config.environment)


def _warn_if_no_jobs(targets: tuple[str, ...], loaded: list[str]) -> None:
    """-r named modules, but none defines a job: the worker would fetch jobs it cannot run
    (a package's empty __init__.py, say, for the module beside it, or a Flask package whose
    create_app() imports the jobs but is never called)."""
    if targets and not registry.names():
        log.warning("no job classes are loaded: no Job class or @job function is defined in"
                    " -r %s (nor in the modules it imports); pass -r the module that defines"
                    " them, e.g. -r yourapp.jobs%s", ", -r ".join(targets), factory_hint(loaded))


def _warn_if_overriding(chosen: str) -> None:
    """Say so when the settings file's (or --redis-url's) Redis replaces another that the
    application configured in its code (a Flask app's SIDEQUEST_REDIS_URL) or the
    environment named: a leftover ./sidequest.toml otherwise sent the worker to another
    Redis than the web processes push to, and their jobs waited there unseen."""
    named = connection.default_url()
    if named not in (connection.DEFAULT_URL, chosen):
        log.warning("Redis: using %s (redis_url of the settings file or --redis-url), not %s,"
                    " which the application or the environment named; the web processes"
                    " push there unless they read the same settings", redacted(chosen),
                    redacted(named))


def _check_memory_limit(limit: int | None) -> None:
    """Refuse a max_memory that the process is over before its first job: each process would
    exit at once, to be restarted (with -P) every few seconds for good."""
    from sidequest.worker.heartbeat import rss_kb

    used = rss_kb() / 1024  # 0 where the OS does not say: no check then
    if limit is None or limit >= used:
        return
    suggested = math.ceil(used * 2 / 50) * 50  # room for the jobs' own memory
    raise ConfigError(f"--max-memory {limit} MB (max_memory) is below this worker's memory"
                      f" right after loading the app, {used:.0f} MB: every process would exit"
                      f" as soon as it starts. Give a limit with room for your jobs above"
                      f" that, e.g. --max-memory {suggested}")


def _supervise(config: Config, processes: int, plan: list[tuple[str, Config]]) -> int:
    """Fork ``processes`` worker processes per shard of ``plan`` (slot i serves shard
    ``i // processes``)."""
    from sidequest.worker import Launcher, logs
    from sidequest.worker.exporter import PortInUse
    from sidequest.worker.lifecycle import StartupHookError
    from sidequest.worker.logs import flush, setup
    from sidequest.worker.supervisor import (
        CONFIG_ERROR,
        STOPPED_ON_REQUEST,
        Child,
        Supervisor,
    )

    connection.after_fork()  # the supervisor must hold no Redis connection across a fork
    # Nor a thread: one caught writing a log line by fork() would leave the child's standard
    # output locked. The supervisor logs little: it writes each line itself.
    setup(config.log_level, config.log_format, background=False)
    if len(plan) > 1:
        log.info("queues on %d shards: %s", len(plan), "; ".join(
            f"{shard}: {', '.join(own.queue_names)}" for shard, own in plan))

    def child(start: Child) -> int:
        connection.after_fork()
        logging.getLogger().handlers.clear()
        setup(config.log_level, config.log_format)
        shard, own = plan[start.slot // processes]
        connection.use_shard(shard)
        if len(plan) > 1:
            logs.shard = shard
        if config.metrics_port is not None:  # each process is a scrape target of its own
            own = dataclasses.replace(own, metrics_port=config.metrics_port + start.slot)
        launcher = None
        try:  # pushed-back jobs: still a graceful stop
            launcher = Launcher(own, supervised=True, nonce=start.nonce, gone=start.gone,
                                quiet=start.quiet, heard=start.heard)
            launcher.run()
        except (StartupHookError, PortInUse) as exc:
            log.error("%s", exc)
            # In a replacement (the first children started), a hook that fails now (a service
            # down for a moment) or its metrics port still taken (by what its predecessor
            # left) is a crash to restart after a wait, not a reason to stop the healthy
            # processes; at the start it is a setup to fix, as a bad setting is.
            return 1 if start.gone else CONFIG_ERROR
        except ConfigError as exc:
            log.error("%s", exc)
            return CONFIG_ERROR
        finally:
            flush()  # the lines still queued: the child ends in os._exit, which writes none
        stopped_for_good = launcher is not None and launcher.stopped_on_request
        return STOPPED_ON_REQUEST if stopped_for_good else 0

    return Supervisor(config, processes * len(plan), child).run()
