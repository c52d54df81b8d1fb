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
from typing import TextIO

import redis

from sidequest import connection
from sidequest.api import PeriodicSet, ProcessSet, Queue, Stats
from sidequest.api.stats import each_shard, summed
from sidequest.config import load_file
from sidequest.errors import ConfigError

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
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def render_stats() -> list[str]:
    if len(connection.shard_names()) == 1:
        return _stats_lines(Stats())
    snapshots = each_shard(Stats)
    lines: list[str] = []
    for name, stats in snapshots.items():
        with connection.on_shard(name):
            lines += [f"Shard {name} ({connection.redacted()})", *_indent(_stats_lines(stats))]
        lines.append("")
    total = summed(s.as_dict() for s in snapshots.values())
    queues: dict[str, int] = {}
    for stats in snapshots.values():
        for queue, size in stats.queues.items():
            queues[queue] = queues.get(queue, 0) + size
    return [*lines, f"All {len(snapshots)} shards", *_indent(_totals_lines(total, queues))]


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


def render_status() -> list[str]:
    now = time.time()
    stats = Stats()
    procs = [[p.identity, p.tag or "-", f"{p.busy}/{p.concurrency}", f"{p.rss / 1024:.0f} MB",
              _ago(now - p.started_at), _ago(now - p.beat) + " ago",
              "quiet" if p.stopping else "running"] for p in ProcessSet()]
    lines = [f"Processes ({len(procs)})"]
    lines += _table(["IDENTITY", "TAG", "BUSY", "RSS", "UPTIME", "BEAT", "STATE"], procs) \
        if procs else ["  none running"]
    queues = [[q.name, f"{q.size:,}", f"{q.latency:.1f}s"] for q in Queue.all()]
    lines += ["", f"Queues ({len(queues)})"]
    lines += _table(["NAME", "SIZE", "LATENCY"], queues) if queues else ["  none"]
    lines += ["", f"Retries: {stats.retry_size:,}   Scheduled: {stats.scheduled_size:,}"
                  f"   Dead: {stats.dead_size:,}   Processed: {stats.processed:,}"
                  f"   Failed: {stats.failed:,}"]
    return lines


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else "-"


def render_periodic() -> list[str]:
    rows = []
    for entry in PeriodicSet():
        last = f"{_when(entry.last_run)} {entry.last_jid} {entry.outcome}".strip()
        rows.append([entry.name, entry.schedule, entry.tz,
                     "paused" if entry.paused else _when(entry.next_run),
                     last if entry.last_jid else "-"])
    if not rows:
        return ["No periodic entries (a worker writes them when it starts)."]
    return _table(["NAME", "SCHEDULE", "TZ", "NEXT RUN", "LAST RUN (JID, OUTCOME)"], rows)


def per_shard(render: Callable[[], list[str]]) -> Callable[[], list[str]]:
    """``render`` once per shard under a heading naming it; as it is with one Redis."""
    def each() -> list[str]:
        if len(connection.shard_names()) == 1:
            return render()
        lines: list[str] = []
        for name, part in each_shard(render).items():
            with connection.on_shard(name):
                lines += [f"Shard {name} ({connection.redacted()})", *_indent(part), ""]
        return lines[:-1]
    return each


RENDER: dict[str, Callable[[], list[str]]] = {
    "stats": render_stats, "status": per_shard(render_status),
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
    parser.add_argument("--redis-url", help="Redis URL (default: $SIDEQUEST_REDIS_URL,"
                        " $REDIS_URL, redis://localhost:6379/0)")
    parser.add_argument("-C", "--config", metavar="FILE",
                        help="the worker's TOML file, for its redis_url and [shards]")
    return parser


def _connect(args: argparse.Namespace) -> None:
    if args.config:
        values = load_file(args.config)
        connection.configure(args.redis_url or values.get("redis_url"),
                             shards=values.get("shards"), shard_queues=values.get("shard_queues"))
    elif args.redis_url:
        connection.configure(args.redis_url)
    connection.shard_map()  # a bad $SIDEQUEST_SHARDS is reported now, not as a crash


def main(command: str, argv: list[str], out: TextIO = sys.stdout) -> int:
    args = _parser(command).parse_args(argv)
    try:
        _connect(args)
    except ConfigError as exc:
        print(f"sidequest {command}: {exc}", file=sys.stderr)
        return 2
    render = RENDER[command]
    interval = max(0.5, args.watch) if args.watch is not None else None
    try:
        while True:
            lines = render()
            out.write((CLEAR if interval else "") + "\n".join(lines) + "\n")
            out.flush()
            if interval is None:
                return 0
            time.sleep(interval)  # a refresh period, not a synchronisation
    except redis.RedisError as exc:
        print(f"sidequest {command}: cannot read Redis at {connection.redacted()}: {exc}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # `sidequest stats --watch | head -3`: the reader left; stop quietly, as cat does.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
