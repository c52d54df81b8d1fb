"""The Retries, Scheduled and Dead tabs: one sorted set each, paginated or filtered, with
actions on one row, on the selected rows, or on the whole set, and a page per job.

Rows are addressed as ``<score>~<digest>-<jid>`` (``SortedEntry.ref``) and found again by
score and the digest of the stored entry, so an action touches exactly the entry that was
shown, even beside others with the same score and jid, and nothing if it moved meanwhile.
Sidekiq's ``<score>-<jid>`` keys (its UI's links and forms, older bookmarks) still work: each
names the first entry with that score and jid, as in Sidekiq's UI, never all of them (one row
pressed acts on one entry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sidequest.api import DeadSet, JobSet, RetrySet, ScheduledSet, SortedEntry
from sidequest.api.refs import parse_ref
from sidequest.web import params, render
from sidequest.web.deadroom import DeadRoom, dead_size, dropped_note, dropped_since, read_room
from sidequest.web.render import plural
from sidequest.web.rows import Row, set_row

#: Rows one POST may act on (a page shows at most 100).
MAX_KEYS = 1000
#: Seconds one filtered page may spend scanning before it offers "more".
SEARCH_BUDGET = 0.15
#: Entries read, after "Retry now (all)" or "Add to queue (all)", to count the unreadable
#: ones it left behind (what is left is mostly those; past this the count says "at least"),
#: a page of SCAN_PAGE per round trip.
UNREADABLE_SCAN = 10_000
SCAN_PAGE = 100

ROW_ACTIONS: dict[str, tuple[str, Callable[[SortedEntry], bool]]] = {
    "retry": ("Retried", SortedEntry.retry),
    "add_to_queue": ("Added to the queue", SortedEntry.add_to_queue),
    "delete": ("Deleted", SortedEntry.delete),
    "kill": ("Killed", SortedEntry.kill),
}
#: Actions that rewrite the payload into a queue: an unreadable one cannot go, so its row
#: offers only what can be done with it (kill or delete).
NEEDS_PAYLOAD = frozenset({"retry", "add_to_queue"})


@dataclass(frozen=True)
class Kind:
    slug: str
    title: str
    jobset: Callable[[], JobSet]
    newest_first: bool
    when: str
    row_actions: tuple[str, ...]
    all_actions: tuple[str, ...]

    def unreadable_hint(self, one: bool = True) -> str:
        """What to do with entries of this set whose payload cannot be read."""
        them = "it" if one else "them"
        return f"kill or delete {them}" if "kill" in self.row_actions else f"delete {them}"


KINDS = (
    Kind("retries", "Retries", RetrySet, False, "Next retry", ("retry", "delete", "kill"),
         ("retry", "delete", "kill")),
    Kind("scheduled", "Scheduled", ScheduledSet, False, "When", ("add_to_queue", "delete"),
         ("add_to_queue", "delete")),
    Kind("morgue", "Dead", DeadSet, True, "Last failed", ("retry", "delete"),
         ("retry", "delete")),
)
LABELS = {"retry": "Retry now", "add_to_queue": "Add to queue", "delete": "Delete",
          "kill": "Kill"}
#: Questions asked before an action that cannot be undone, on one row, on the ticked rows,
#: or on every job of a set ("{title}": the set's name).
ROW_CONFIRMS = {"delete": "Delete this job?", "kill": "Kill this job? It moves to Dead."}
BULK_CONFIRMS = {"delete": "Delete the selected jobs?",
                 "kill": "Kill the selected jobs? They move to Dead."}
ALL_CONFIRMS = {"retry": "Retry every job in {title} now?",
                "add_to_queue": "Add every job in {title} to its queue now?",
                "delete": "Delete every job in {title}?",
                "kill": "Kill every job in {title}? They move to Dead."}
NOTHING_SELECTED = "No jobs selected: tick the jobs first."


def routes() -> list[Route]:
    found: list[Route] = []
    for kind in KINDS:
        views = _Views(kind)
        found += [
            Route(f"/{kind.slug}", views.listing, methods=["GET"], name=kind.slug),
            Route(f"/{kind.slug}", views.act_on_rows, methods=["POST"]),
            Route(f"/{kind.slug}/all/{{action}}", views.act_on_all, methods=["POST"]),
            # :path, so that a jid with a slash (another client's) still names its row.
            Route(f"/{kind.slug}/{{key:path}}", views.detail, methods=["GET"]),
            Route(f"/{kind.slug}/{{key:path}}", views.act_on_one, methods=["POST"]),
        ]
    return found


def found_note(found: int, cursor: int, next_cursor: int) -> str:
    """What a filtered page can truly say of its matches. A search reads the set a part at a
    time (the cursor marks where it is), so only a search that went from the start to the end
    in one request knows a total; any other part tells how many it found, and whether more
    may follow."""
    matches = render.plural(found, "match", "matches")
    if not cursor and not next_cursor:
        return f"{found:,} matching"
    if not found:
        return "none found yet; more may follow" if next_cursor else "no more matches"
    if next_cursor:
        return f"{'first' if not cursor else 'next'} {matches} shown; more may follow"
    return f"last {matches}"


def parse_key(key: str) -> tuple[float, str, str | None] | None:
    """A row's key as ``(score, jid, digest)``: ``<score>~<digest>-<jid>``, or Sidekiq's
    ``<score>-<jid>`` (digest None)."""
    return parse_ref(key)


class _Views:
    def __init__(self, kind: Kind) -> None:
        self.kind = kind

    async def listing(self, request: Request) -> Response:
        kind = self.kind
        count, page = params.count(request), params.page(request)
        substr = params.text(request, "substr")
        cursor = params.integer(request, "cursor", 0, (0, 2**63 - 1))
        next_cursor = 0
        if substr:
            rows, next_cursor = await run_in_threadpool(self._search, substr, cursor, count)
            size = len(rows)
        else:
            rows, size, page = await run_in_threadpool(self._page, page, count)
        room = await run_in_threadpool(read_room) if self._kills else None
        return render.page(request, "set.html", kind.title, kind=kind, rows=rows, size=size,
                           page=page, last_page=params.last_page(size, count), count=count,
                           substr=substr, cursor=cursor, next_cursor=next_cursor,
                           found=found_note(len(rows), cursor, next_cursor) if substr else "",
                           **self._questions(room, len(rows), size))

    def _page(self, page: int, count: int) -> tuple[list[Row], int, int]:
        """One page of the set as table rows (the entries themselves are dropped here, in
        the worker thread: see rows.py), its size, and the page's number: the last page
        instead of one past the end (the set shrank, or a hand-made URL)."""
        jobset, newest_first = self.kind.jobset(), self.kind.newest_first
        entries, size = jobset.counted_page(page, count, newest_first)
        if page > params.last_page(size, count):
            page = params.last_page(size, count)
            entries, size = jobset.counted_page(page, count, newest_first)
        return [set_row(entry) for entry in entries], size, page

    def _search(self, substr: str, cursor: int, count: int) -> tuple[list[Row], int]:
        """A filtered page's rows, and the cursor to go on from (0 at the end)."""
        entries, next_cursor = self.kind.jobset().search(substr, cursor, count, SEARCH_BUDGET)
        return [set_row(entry) for entry in entries], next_cursor

    @property
    def _kills(self) -> bool:
        """Whether this set's jobs can be killed: its pages then say how full Dead is."""
        return "kill" in self.kind.row_actions

    def _questions(self, room: DeadRoom | None, selectable: int = 0,
                   size: int = 0) -> dict[str, Any]:
        """The buttons' labels and the questions asked before the actions that need one. A
        Kill's question says what it deletes from a full Dead (``room``): one row, any of
        the ``selectable`` rows shown, or the whole set of ``size``."""
        every = {action: question.format(title=self.kind.title)
                 for action, question in ALL_CONFIRMS.items()}
        row, bulk = dict(ROW_CONFIRMS), dict(BULK_CONFIRMS)
        if room is not None:
            row["kill"] += room.kill_note(1)
            bulk["kill"] += room.bulk_note(selectable)
            every["kill"] += room.kill_note(size)
        return {"labels": LABELS, "row_confirms": row, "bulk_confirms": bulk,
                "all_confirms": every, "needs_payload": NEEDS_PAYLOAD}

    async def detail(self, request: Request) -> Response:
        entry = await run_in_threadpool(self._find, request.path_params["key"])
        if entry is None:
            return render.page(request, "gone.html", self.kind.title, status_code=404,
                               kind=self.kind)
        # Inflated once, off the event loop: a hostile entry can cost up to the size cap.
        backtrace = await run_in_threadpool(lambda: entry.error_backtrace)
        room = await run_in_threadpool(read_room) if self._kills else None
        return render.page(request, "job.html", entry.klass, kind=self.kind, entry=entry,
                           fields=sorted(entry.item.items()), **self._questions(room),
                           backtrace=backtrace)

    def _find(self, key: str) -> SortedEntry | None:
        parsed = parse_key(key)
        return self.kind.jobset().entry(*parsed) if parsed is not None else None

    async def act_on_one(self, request: Request) -> Response:
        action = render.form(request).get("action", "")
        return await self._act(request, [request.path_params["key"]], action)

    async def act_on_rows(self, request: Request) -> Response:
        action = render.form(request).get("action", "")
        keys = list(dict.fromkeys(render.form_list(request, "key")))  # each row once
        return await self._act(request, keys[:MAX_KEYS], action)

    async def _act(self, request: Request, keys: list[str], action: str) -> Response:
        if action not in self.kind.row_actions:
            return render.text("Unknown action", 400)
        if not keys:  # a "Selected:" button pressed with no row ticked
            return self._back(request, NOTHING_SELECTED)
        verb = ROW_ACTIONS[action][0]
        unreadable = held = 0
        dropped = ""
        if action == "kill":
            done, dropped = await run_in_threadpool(self._kill, keys)
        else:
            done, unreadable, held = await run_in_threadpool(self._apply, keys, action)
        gone = len(keys) - done - unreadable - held
        return self._back(request, f"{verb}: {done} of {len(keys)}."
                          + self._unreadable_note(action, unreadable) + dropped
                          + _held_note(action, held) + self._gone_note(gone))

    def _gone_note(self, count: int) -> str:
        """The message's part on the rows whose job was no longer there (another operator,
        or a worker, acted on it after the page was drawn)."""
        if count <= 0:
            return ""
        was = "was" if count == 1 else "were"
        return (f" {plural(count, 'job')} {was} no longer in {self.kind.title}: acted on"
                " since the page was shown (by someone else, or a worker).")

    def _back(self, request: Request, message: str) -> Response:
        """To the list, on the page, filter and order the action was taken from."""
        return render.back(request, f"/{self.kind.slug}", message, **render.place(request))

    def _apply(self, keys: list[str], action: str) -> tuple[int, int, int]:
        """Act on the one entry each key names: "Deleted: 3 of 3." counts rows, never more.
        Also returns how many were left as they were because the action needs a payload
        that cannot be read (the move would refuse them without a word), and how many
        because an identical unique job holds their lock."""
        jobset, act = self.kind.jobset(), ROW_ACTIONS[action][1]
        done = unreadable = 0
        for key in keys:
            parsed = parse_key(key)
            entry = jobset.entry(*parsed) if parsed is not None else None
            if entry is not None and entry.parse_error and action in NEEDS_PAYLOAD:
                unreadable += 1
            elif entry is not None:
                done += act(entry)
        return done, unreadable, jobset.held

    def _kill(self, keys: list[str]) -> tuple[int, str]:
        """Kill the rows; returns how many moved, and what the message says of the jobs
        it deleted from Dead (here, off the event loop: ``dropped_note`` reads Redis)."""
        before = dead_size()
        done, _, _ = self._apply(keys, "kill")  # a kill needs no readable payload
        return done, dropped_note(dropped_since(before, done))

    def _unreadable_note(self, action: str, count: int, at_least: bool = False) -> str:
        """The message's part on the jobs an action that needs their payload left as they
        were, because it cannot be read."""
        if not count:
            return ""
        verb, one = ROW_ACTIONS[action][0].lower(), count == 1 and not at_least
        some = f"{'At least ' if at_least else ''}{plural(count, 'job')}"
        what = "its payload is" if one else "their payloads are"
        return (f" {some} {'was' if one else 'were'} not {verb}: {what} unreadable;"
                f" {self.kind.unreadable_hint(one)}.")

    async def act_on_all(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in self.kind.all_actions:
            return render.text("Unknown action", 400)
        done, note = await run_in_threadpool(self._apply_all, action)
        shown = _shown(render.form(request).get("shown", ""))
        if shown is not None and done > shown:
            # Not refused: in a failure storm the set grows between any page and its press.
            note = (f" That is {done - shown:,} more than the {shown:,} this page"
                    " showed: they came in after it was drawn." + note)
        return self._back(request, f"{ROW_ACTIONS[action][0]}: {done:,}.{note}")

    def _apply_all(self, action: str) -> tuple[int, str]:
        """How many jobs the action moved or deleted, and what its message adds: the jobs
        a Kill deleted from Dead, the unreadable jobs a retry or an add to queue left."""
        jobset = self.kind.jobset()
        if action == "delete":
            return jobset.clear(), ""
        if action == "kill":
            before = dead_size()
            done = jobset.kill_all()
            return done, dropped_note(dropped_since(before, done))
        if action == "add_to_queue" and isinstance(jobset, ScheduledSet):
            done = jobset.add_all_to_queue()
        else:
            done = jobset.retry_all()
        return done, (self._unreadable_note(action, *unreadable_left(jobset))
                      + _held_note(action, jobset.held))


def _held_note(action: str, count: int) -> str:
    """The message's part on the unique jobs a move to a queue left where they were."""
    if not count:
        return ""
    one = count == 1
    return (f" {plural(count, 'job')} {'was' if one else 'were'} not"
            f" {ROW_ACTIONS[action][0].lower()}: an identical job holds {'its' if one else 'their'}"
            f" unique lock (it is queued, scheduled, running or waiting to retry;"
            " unique_for); try again once it has ended.")


def unreadable_left(jobset: JobSet) -> tuple[int, bool]:
    """How many entries a whole-set move left behind for want of a readable payload: those
    of the set's first ``UNREADABLE_SCAN`` entries (the bulk moved the readable ones out;
    workers add readable ones). True when the set held more than that: "at least"."""
    count = size = 0
    for page in range(1, UNREADABLE_SCAN // SCAN_PAGE + 1):
        entries, size = jobset.counted_page(page, SCAN_PAGE)
        count += sum(1 for entry in entries if entry.parse_error)
        if len(entries) < SCAN_PAGE:
            return count, False
    return count, size > UNREADABLE_SCAN


def _shown(text: str) -> int | None:
    """The count the page showed, as its form posted it; None for anything else (read after
    the action is done, it must not fail the answer: isdigit() takes "²", int() does not)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None
