"""The Busy tab: processes with Quiet and Stop, and the jobs running right now."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest import connection, keys
from sidequest.api import Process, ProcessSet, Work, WorkSet, awaiting_recovery, cancel
from sidequest.api.cancel import cancelling
from sidequest.api.lenient import key_of, replies
from sidequest.api.processes import quarantined
from sidequest.web import params, render

ACTIONS = ("quiet", "stop", "cancel")
#: Rows of the processes table a page.
PROCESSES_PER_PAGE = 100


async def busy(request: Request) -> Response:
    page, count = params.page(request), params.count(request, 50)
    processes, works, orphans, cancelled, asked = await run_in_threadpool(_read)
    suspects, suspect_queues = await run_in_threadpool(quarantined)
    ours = {p.identity for p in processes if p.sidequest}
    last = params.last_page(len(works), count)
    page = min(page, last)
    shown = works[(page - 1) * count: page * count]
    process_page, process_last = _process_page(request, len(processes))
    return render.page(request, "busy.html", "Busy", processes=processes, works=shown,
                       shown_processes=processes[(process_page - 1) * PROCESSES_PER_PAGE:
                                                 process_page * PROCESSES_PER_PAGE],
                       process_page=process_page, process_last_page=process_last,
                       total_works=len(works), page=page, last_page=last,
                       concurrency=sum(p.concurrency for p in processes),
                       busy=sum(p.busy for p in processes), cancellable=ours,
                       cancelled=cancelled, orphans=orphans, asked=asked,
                       suspects=suspects, suspect_queues=suspect_queues,
                       recoverer=bool(ours))


def _process_page(request: Request, total: int) -> tuple[int, int]:
    """Which page of the processes table to show, and the last: a fleet of thousands (or
    entries another program wrote) drew one page of megabytes while every other request of
    the dashboard waited."""
    last = params.last_page(total, PROCESSES_PER_PAGE)
    return min(params.integer(request, "process_page", 1, (1, params.MAX_PAGE)), last), last


def _read() -> tuple[list[Process], list[Work], dict[str, int], set[str], dict[str, set[str]]]:
    """The processes (only Sidequest's can cancel a running job: Ruby Sidekiq would run it
    to its end, and a cancel mark left behind would drop its retry if a Sidequest worker
    fetched that), their running jobs, the jobs of dead Sidequest processes that wait to go
    back to their queues, and which running jobs were cancelled already (their row says so
    instead of offering Cancel again), and the signals each process has yet to read."""
    works = list(WorkSet())
    jids = [w.job.jid for w in works if w.job.jid]
    processes = ProcessSet().processes()
    return (processes, works, awaiting_recovery(), cancelling(jids),
            _unread_signals(processes))


def _unread_signals(processes: list[Process]) -> dict[str, set[str]]:
    """The signals (TSTP, TERM) each process was sent and has not read yet, by identity. A
    process takes one from its ``<identity>-signals`` list at each heartbeat, and its record
    tells only "quiet" afterwards: until then its row says the stop (or quiet) was asked
    for, instead of "running" with the buttons that ask again."""
    if not processes:
        return {}
    pipe = connection.client().pipeline(transaction=False)
    for process in processes:
        # Its exact name: one that is not UTF-8 has its list under its very bytes.
        pipe.lrange(key_of(keys.signals, process._exact), 0, -1)
    return {process.identity: {_text(name) for name in listed or ()}
            for process, listed in zip(processes, replies(pipe), strict=True)}


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


async def busy_action(request: Request) -> Response:
    """Quiet or stop one process (``identity`` posted) or all of them."""
    form = render.form(request)
    action = form.get("action", "")
    if action not in ACTIONS:
        return render.text("Unknown action", 400)
    if action == "cancel":
        jid = form.get("jid", "")
        if not jid:
            return render.text("No job given", 400)
        await run_in_threadpool(cancel, jid)
        return render.back(request, "/busy", f"Cancelling {jid}: it stops within a second if "
                                             "it checks, or is dropped before it starts.")
    identity = form.get("identity") or None
    count, silent = await run_in_threadpool(_signal, identity, action)
    return render.back(request, "/busy", _told(identity is None, action, count, silent))


def _told(every: bool, action: str, count: int, silent: int) -> str:
    """What the flash says. A process that is not responding (killed, or frozen) reads the
    request only if it comes back: "does it at its next heartbeat" would be untrue of it."""
    if not count:
        return "No such process is running."
    target = "every process" if every else "the process"
    # The row says "requested" at once (see _unread_signals); the process reads it at a beat.
    told = f"Asked {target} to {action} ({count})"
    if not silent:
        return told + "; a process does it at its next heartbeat, within a few seconds."
    which = ("it is" if count == 1 else f"{silent} of them {'is' if silent == 1 else 'are'}")
    return (f"{told}; {which} not responding (no heartbeat): a frozen process reads it if it"
            " comes back; if it died, its running jobs go back to their queues when its"
            " entry expires.")


def _signal(identity: str | None, action: str) -> tuple[int, int]:
    """Send the request; how many processes were asked, and how many of them are silent."""
    processes = ProcessSet(clean=False).processes()
    chosen = [p for p in processes if (identity is None or p.identity == identity)
              and not p.embedded]  # an embedded worker is its application's to stop
    for process in chosen:
        if action == "quiet":
            process.quiet()
        else:
            process.stop()
    now = time.time()
    return len(chosen), sum(1 for p in chosen if p.silent(now))
