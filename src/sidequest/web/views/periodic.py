"""The Periodic tab: every periodic entry with its schedule, next and last run; pause,
resume, enqueue now, and remove (an entry no deployed code defines any more)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest.api import PeriodicSet
from sidequest.errors import SidequestError
from sidequest.web import params, render

ACTIONS = ("pause", "resume", "enqueue", "remove")
#: Entries a page.
PER_PAGE = 100


async def periodic(request: Request) -> Response:
    """A page of the entries: however many a Redis holds, the page stays one page long."""
    page, count = params.page(request), params.count(request, PER_PAGE)
    entries, total = await run_in_threadpool(PeriodicSet().page, page, count)
    last = params.last_page(total, count)
    if page > last:  # entries removed since, or a hand-made URL
        page = last
        entries, total = await run_in_threadpool(PeriodicSet().page, page, count)
    return render.page(request, "periodic.html", "Periodic", entries=entries, total=total,
                       page=page, last_page=last)


async def periodic_action(request: Request) -> Response:
    """Pause, resume, enqueue now or remove the entry ``name`` posted."""
    form = render.form(request)
    action, name = form.get("action", ""), form.get("name", "")
    if action not in ACTIONS or not name:
        return render.text("Unknown action", 400)
    message = await run_in_threadpool(_act, action, name)
    return render.back(request, "/periodic", message)


def _act(action: str, name: str) -> str:
    periodic = PeriodicSet()
    if action == "enqueue":
        try:
            jid = periodic.enqueue_now(name)
        except SidequestError as exc:
            return f"{exc}."
        return f"Enqueued {name} now ({jid})." if jid else f"No periodic entry {name}."
    if action == "remove":
        if not periodic.remove(name):
            return f"No periodic entry {name}."
        return (f"Removed {name}: running workers stop pushing it; one that starts with it"
                " in its code writes it back.")
    done = periodic.pause(name) if action == "pause" else periodic.resume(name)
    if not done:
        return f"No periodic entry {name}."
    return f"Paused {name}." if action == "pause" else f"Resumed {name}."
