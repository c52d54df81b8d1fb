"""The Periodic tab: every periodic entry with its schedule, next and last run; pause,
resume and enqueue now."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sidequest.api import PeriodicEntry, PeriodicSet
from sidequest.errors import SidequestError
from sidequest.web import render

ACTIONS = ("pause", "resume", "enqueue")


async def periodic(request: Request) -> Response:
    entries: list[PeriodicEntry] = await run_in_threadpool(PeriodicSet().entries)
    return render.page(request, "periodic.html", "Periodic", entries=entries)


async def periodic_action(request: Request) -> Response:
    """Pause, resume or enqueue now the entry ``name`` posted."""
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
    done = periodic.pause(name) if action == "pause" else periodic.resume(name)
    if not done:
        return f"No periodic entry {name}."
    return f"Paused {name}." if action == "pause" else f"Resumed {name}."
