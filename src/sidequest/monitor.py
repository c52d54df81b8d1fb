"""``sidequest stats`` and ``sidequest status``: a terminal view of a Redis full of jobs.

    sidequest stats              totals and queue sizes
    sidequest status             processes, queues, and the retry/scheduled/dead counts
    sidequest status --watch 2   the same, redrawn every 2 seconds until Ctrl-C
    sidequest periodic           periodic entries: schedule, time zone, next and last run

Everything is read through ``sidequest.api``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import redis

from sidequest import connection, url_problems
from sidequest.api import (
    PeriodicEntry,
    PeriodicSet,
    Process,
    ProcessSet,
    Queue,
    Stats,
    awaiting_recovery,
)
from sidequest.api.stats import (
    UNREACHABLE_ERRORS,
    ShardUnreachable,
    describe,
    each_reachable_shard,
    live_stats,
    summed,
)
from sidequest.config import connect_as_file, default_file, settings_arg
from sidequest.errors import ConfigError
from sidequest.shown import printable

CLEAR = "\033[2J\033[H"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    rows = [[printable(cell) for cell in row] for row in rows]  # widths of what is shown
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


@dataclass(frozen=True)
class Screen:
    """What a command prints, and the shards it could not read (named on the screen too)."""

    lines: list[str]
    down: dict[str, ShardUnreachable] = field(default_factory=dict)


def render_stats() -> list[str]:
    return stats_screen().lines


def stats_screen() -> Screen:
    if len(connection.shard_names()) == 1:
        return Screen(_stats_lines(live_stats()) + _awaiting_lines())
    reads = each_reachable_shard(lambda: (live_stats(), _awaiting_lines()))
    snapshots = {name: stats for name, (stats, _) in reads.values.items()}
    lines = _shard_parts({name: _stats_lines(stats) + waiting
                          for name, (stats, waiting) in reads.values.items()}, reads.down)
    if not snapshots:  # every shard is down: no sum to show
        return Screen(lines[:-1], reads.down)
    total = summed(s.as_dict() for s in snapshots.values())
    queues: dict[str, int] = {}
    for stats in snapshots.values():
        for queue, size in stats.queues.items():
            queues[queue] = queues.get(queue, 0) + size
    return Screen([*lines, _total_heading(reads.down), *_indent(_totals_lines(total, queues)),
                   *_misplaced_lines(snapshots)], reads.down)


def _served(shard: str) -> set[str] | None:
    """The queues the running processes of ``shard`` read (Ruby's included); None when the
    shard stopped answering since its figures were read (nothing is said of it then)."""
    try:
        with connection.on_shard(shard):
            return {name for process in ProcessSet() for name in process.queues}
    except UNREACHABLE_ERRORS:
        return None


def _misplaced_lines(snapshots: dict[str, Stats]) -> list[str]:
    """Jobs in a queue on a shard the table does not route it to (pushed by a process
    without the table, or before a queue moved), which no process there reads: no worker
    with the table reads them there, and nothing else would say so."""
    table = connection.shard_map()
    found = [(queue, size, shard, table.shard_of(queue))
             for shard, stats in snapshots.items() if table is not None
             for queue, size in sorted(stats.queues.items())
             if size and table.shard_of(queue) != shard]
    # The processes are read only for a shard that holds such jobs, and only then.
    served = {shard: _served(shard) for shard in {shard for _, _, shard, _ in found}}
    found = [entry for entry in found
             if (queues := served[entry[2]]) is not None and entry[0] not in queues]
    lines = []
    for queue, size, shard, home in found:
        url = connection.redacted(connection.shard_url(shard))
        lines += ["", f"Queue {queue} has {size:,} job{'s' * (size != 1)} on shard {shard}, but"
                  f" the shard table routes it to shard {home}: workers with the table never"
                  f" read it there. Drain it with a worker run without the table"
                  f" (SIDEQUEST_SHARDS unset; -C /dev/null reads no settings file, not even"
                  f" ./sidequest.toml):",
                  f"  sidequest -C /dev/null -r <your jobs module> --redis-url {url} -q {queue}"]
    return lines


def _shard_parts(parts: dict[str, list[str]], down: dict[str, ShardUnreachable]) -> list[str]:
    """Each shard's heading and its part, in shard order; a shard that could not be read is
    named where its part would be, with the reason."""
    lines: list[str] = []
    for name in connection.shard_names():
        heading = f"Shard {name} ({connection.redacted(connection.shard_url(name))})"
        if name in down:
            lines += [f"{heading}: UNREACHABLE, not shown: {down[name].reason}", ""]
        else:
            lines += [heading, *_indent(parts[name]), ""]
    return lines


def _total_heading(down: dict[str, ShardUnreachable]) -> str:
    count = len(connection.shard_names())
    if not down:
        return f"All {count} shards"
    # A sum that quietly left a shard out would read as the whole: say what it lacks.
    return (f"All shards but {', '.join(down)} ({count - len(down)} of {count};"
            f" {', '.join(down)} could not be read)")


def _indent(lines: list[str]) -> list[str]:
    return [f"  {line}" if line else line for line in lines]


def _stats_lines(stats: Stats) -> list[str]:
    return _totals_lines(stats.as_dict(), stats.queues)


def _totals_lines(stats: dict[str, int], queues: dict[str, int]) -> list[str]:
    lines = [
        f"Processed: {stats['processed']:,}   Failed: {stats['failed']:,}"
        f"   Busy: {stats['busy']}   Processes: {stats['processes']}",
        f"Enqueued: {stats['enqueued']:,}   Retries: {stats['retries']:,}"
        f"   Scheduled: {stats['scheduled']:,}   Dead: {stats['dead']:,}"
        + (f"   Expired: {stats['expired']:,}" if stats["expired"] else "")
        + (f"   Over limit: {stats['overlimit']:,}" if stats["overlimit"] else ""),
        "",
    ]
    ordered = sorted(queues.items(), key=lambda p: (-p[1], p[0]))
    rows = [[name, f"{size:,}"] for name, size in ordered]
    return lines + (_table(["QUEUE", "SIZE"], rows) if rows else ["No queues."])


def status_screen() -> Screen:
    """``render_status`` on each shard. A worker given the queues of some shards registers
    on those only: whether a process runs on any shard is read first, so that a shard with
    none still names the queues nothing serves there."""
    if len(connection.shard_names()) == 1:
        return Screen(render_status())
    anywhere = any(each_reachable_shard(_any_process).values.values())
    return per_shard(lambda: render_status(process_anywhere=anywhere))()


def _any_process() -> bool:
    return next(iter(ProcessSet()), None) is not None


def render_status(*, process_anywhere: bool = False) -> list[str]:
    """``process_anywhere``: a process runs on some shard, maybe another one (queues waiting
    on a shard that has no process of its own are then named as unserved too)."""
    now = time.time()
    stats = Stats()
    running = list(ProcessSet())
    procs = [[p.identity, p.tag or "-", f"{p.busy}/{p.concurrency}", f"{p.rss / 1024:.0f} MB",
              _ago(now - p.started_at), _ago(now - p.beat) + " ago",
              _state(p, now)] for p in running]
    lines = [f"Processes ({len(procs)})"]
    lines += _table(["IDENTITY", "TAG", "BUSY", "RSS", "UPTIME", "BEAT", "STATE"], procs) \
        if procs else ["  none running"]
    found = Queue.all()
    queues = [[q.name, f"{q.size:,}", f"{q.latency:.1f}s"] for q in found]
    lines += ["", f"Queues ({len(queues)})"]
    lines += _table(["NAME", "SIZE", "LATENCY"], queues) if queues else ["  none"]
    lines += _unserved_lines(found, running, process_anywhere)
    lines += ["", f"Retries: {stats.retry_size:,}   Scheduled: {stats.scheduled_size:,}"
                  f"   Dead: {stats.dead_size:,}   Processed: {stats.processed:,}"
                  f"   Failed: {stats.failed:,}"]
    return lines + _awaiting_lines()


def _state(process: Process, now: float) -> str:
    if process.silent(now):
        return "NOT RESPONDING (no heartbeat: killed or frozen)"
    if process.shutting_down:
        return "stopping"
    return "quiet" if process.stopping else "running"


def _unserved_lines(queues: list[Queue], running: list[Process],
                    process_anywhere: bool = False) -> list[str]:
    """Queues holding jobs that no running process reads: a name pushed to but never given
    to -q (or spelt otherwise: names are case-sensitive), which nothing else would point out.
    With no process anywhere (here or on another shard), the line says to start one."""
    served = {name for process in running if not process.stopping for name in process.queues}
    waiting = [q for q in queues if q.size and q.name not in served]
    if not waiting:
        return []
    if not (running or process_anywhere):  # the first hour: jobs pushed, no worker started
        return ["", "No Sidequest worker is running: jobs wait in their queues until one"
                    f" starts ({_start_command()})"]
    named = ", ".join(f"{q.name} ({q.size:,})" for q in waiting)
    return ["", f"No running process serves: {named}. Start a worker with -q for each (a"
                " quiet process fetches nothing), or check the name the jobs are pushed to"
                " (queue names are case-sensitive)"]


#: The module of ``python manage.py sidequest``, which Django imports only to run it.
DJANGO_COMMAND = "sidequest.contrib.django.management.commands.sidequest"


def _start_command() -> str:
    """How to start a worker, in the words of the command that is showing the status. Under
    ``manage.py sidequest status`` a plain ``sidequest -r`` would fail to import the
    project's jobs (Django not set up); looked up in sys.modules, so that this module never
    imports Django."""
    if DJANGO_COMMAND in sys.modules:
        return "python manage.py sidequest -q <queue>"
    return "sidequest -r yourapp.jobs -q <queue>"


def _awaiting_lines() -> list[str]:
    """Jobs of dead Sidequest processes not yet put back: said, since nothing else shows them."""
    orphans = awaiting_recovery()
    if not orphans:
        return []
    waiting = sum(orphans.values())
    jobs = f"{waiting} job" + ("" if waiting == 1 else "s")
    owners = f"{len(orphans)} stopped process" + ("" if len(orphans) == 1 else "es")
    return ["", f"Awaiting recovery: {jobs} of {owners} ({', '.join(orphans)}); a running"
                " Sidequest worker puts them back in their queues (Ruby Sidekiq does not)"]


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else "-"


def render_periodic() -> list[str]:
    rows = []
    for entry in PeriodicSet():
        last = f"{_when(entry.last_run)} {entry.last_jid} {entry.outcome}".strip()
        rows.append([entry.name, entry.schedule, entry.tz, _next_run(entry),
                     last if entry.last_jid else "-", entry.source or "-"])
    if not rows:
        return ["No periodic entries (a worker writes them when it starts)."]
    # Where each is defined: an entry no worker defines any more (its module dropped from
    # -r) is found by its source, and removed with `PeriodicSet().remove(name)`.
    return _table(["NAME", "SCHEDULE", "TZ", "NEXT RUN", "LAST RUN (JID, OUTCOME)",
                   "DEFINED IN"], rows)


def _next_run(entry: PeriodicEntry) -> str:
    if entry.overdue_since is not None:  # before "paused": a paused entry's ticks are handled too
        return f"OVERDUE since {_when(entry.overdue_since)} (no running worker defines it)"
    return "paused" if entry.paused else _when(entry.next_run)


def per_shard(render: Callable[[], list[str]]) -> Callable[[], Screen]:
    """``render`` once per shard under a heading naming it; as it is with one Redis. A shard
    that cannot be reached is named where its part would be, and the others are shown."""
    def each() -> Screen:
        if len(connection.shard_names()) == 1:
            return Screen(render())
        reads = each_reachable_shard(render)
        return Screen(_shard_parts(reads.values, reads.down)[:-1], reads.down)
    return each


RENDER: dict[str, Callable[[], Screen]] = {
    "stats": stats_screen, "status": status_screen,
    "periodic": per_shard(render_periodic)}


#: What each command shows, for its --help.
ABOUT = {"stats": "Totals (processed, failed, busy, the retry, scheduled and dead sets) and"
                  " each queue's size.",
         "status": "The worker processes (busy threads, memory, uptime), then each queue's"
                   " size and latency.",
         "periodic": "The periodic entries: schedule, time zone, next run and last run."}


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"sidequest {command}", description=ABOUT[command])
    parser.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                        help="redraw every SECONDS (default 2) until Ctrl-C")
    parser.add_argument("--redis-url", help="Redis URL (default: the -C file's redis_url,"
                        " $SIDEQUEST_REDIS_URL, $REDIS_URL, redis://localhost:6379/0)")
    parser.add_argument("-C", "--config", metavar="FILE", type=settings_arg,
                        help="the worker's TOML file, for its redis_url and [shards]"
                             " (default: ./sidequest.toml or ./config/sidequest.toml if there)")
    return parser


def _connect(args: argparse.Namespace, settings_file: bool) -> None:
    if args.redis_url and connection.redacted(args.redis_url) != args.redis_url:
        print("sidequest: warning: the Redis password in --redis-url can be read by every user"
              " of this machine (ps, for as long as --watch runs); give the URL in"
              " SIDEQUEST_REDIS_URL or in the -C file's redis_url instead", file=sys.stderr,
              flush=True)
    # The settings file the worker reads without -C (./sidequest.toml): the same Redis.
    connect_as_file(args.config or (default_file() if settings_file else None), args.redis_url)


def main(command: str, argv: list[str], out: TextIO = sys.stdout, *,
         settings_file: bool = True) -> int:
    """``settings_file=False``: without -C, no ./sidequest.toml either (``manage.py
    sidequest stats``, whose worker reads the project's settings instead)."""
    args = _parser(command).parse_args(argv)
    if args.watch is not None and not args.watch > 0:  # a typo, not a request to spin
        print(f"sidequest {command}: --watch takes the seconds between redraws, more than 0;"
              f" got {args.watch:g}", file=sys.stderr)
        return 2
    try:
        _connect(args, settings_file)
    except ConfigError as exc:
        print(f"sidequest {command}: {exc}", file=sys.stderr)
        return 2
    render = RENDER[command]
    interval = max(0.5, args.watch) if args.watch is not None else None
    frames = 0
    try:
        while True:
            screen = render()
            out.write(_frame_start(out, frames) if interval else "")
            out.write("\n".join(map(printable, screen.lines)) + "\n")
            frames += 1
            out.flush()
            _report_down(command, screen.down)
            if interval is None:
                # The shards that answered are printed, but a script must notice the gap.
                return 1 if screen.down else 0
            time.sleep(interval)  # a refresh period, not a synchronisation
    except redis.RedisError as exc:
        print(f"sidequest {command}: {_failure(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # `sidequest stats --watch | head -3`: the reader left; stop quietly, as cat does.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _frame_start(out: TextIO, frames: int) -> str:
    """What comes before a --watch frame: on a terminal, a cleared screen; into a pipe or a
    file (`--watch 1 | tee`), or a terminal that knows no escape codes (TERM unset or dumb:
    an editor's shell, a CI log), a blank line between frames."""
    if out.isatty() and os.environ.get("TERM", "dumb") != "dumb":
        return CLEAR
    return "\n" if frames else ""


def _report_down(command: str, down: dict[str, ShardUnreachable]) -> None:
    for error in down.values():
        print(f"sidequest {command}: {describe(error.shard)} is unreachable ({error.reason});"
              " the other shards are shown without it: start it or correct its URL",
              file=sys.stderr)


def _failure(exc: redis.RedisError) -> str:
    if isinstance(exc, ShardUnreachable):
        return str(exc)  # it names the shard it could not reach
    if len(connection.shard_names()) == 1:
        problem = connection.url_problem(exc, connection.redacted())  # a wrong password
        return str(problem) if problem else (
            f"cannot read Redis at {connection.redacted()}: {url_problems.readable(exc)}")
    # Not a shard that is down but a command refused: which shard said so is not known here.
    return f"cannot read the shards ({', '.join(connection.shard_names())}): {exc}"
