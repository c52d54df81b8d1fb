"""Turning data into pages: the Jinja2 environment (autoescaping everything), the filters the
templates use, and small response helpers shared by the views.

Every value read from Redis is attacker-influenced (job arguments, class names, error
messages, queue names, tags): templates print it only through autoescaping, URLs built from
it quote it as one path segment, and nothing is ever marked safe.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from sidequest import __version__, connection
from sidequest.api import lenient
from sidequest.shown import huge_int
from sidequest.web import params
from sidequest.web.session import Session
from sidequest.web.settings import Settings

#: Characters of job arguments shown in a table cell; the job's own page shows them all.
ARGS_IN_TABLE = 200
#: Characters of any one value shown on a job's page (a 50 MB payload must not become a page).
VALUE_ON_PAGE = 100_000
#: Longest string any template prints: a field row's value and its "more characters" note.
PRINTED_AT_MOST = VALUE_ON_PAGE + 100

#: The hidden form field that carries the list page's query (page, filter, order) to an action.
BACK_FIELD = "back"
#: What each query parameter of a list page may be when an action returns to it: a pattern
#: for the number and choice ones; free text (the filter) only has its length cut.
PLACE_PARAMS = {"page": r"\d{1,8}", "count": r"\d{1,3}", "cursor": r"\d{1,20}",
                "direction": r"asc|desc", "substr": None}

TABS = (("", "Dashboard"), ("busy", "Busy"), ("queues", "Queues"), ("retries", "Retries"),
        ("scheduled", "Scheduled"), ("morgue", "Dead"), ("metrics", "Metrics"),
        ("periodic", "Periodic"), ("limiters", "Limiters"), ("batches", "Batches"))


def settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.sidequest)


def session(request: Request) -> Session:
    return cast(Session, request.scope["sidequest.session"])


def root(request: Request) -> str:
    """The path the dashboard is mounted at ("" when it is the whole site)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def route_path(scope: Any) -> str:
    """The request's path inside the dashboard, whether or not the server kept the mount
    prefix in ``path`` (Starlette's Mount does, some WSGI bridges do not)."""
    path, prefix = str(scope.get("path", "/")), str(scope.get("root_path", "")).rstrip("/")
    return path[len(prefix):] or "/" if prefix and path.startswith(prefix) else path


def form(request: Request) -> dict[str, str]:
    """The POSTed form (first value of each field), parsed and CSRF-checked by the guard."""
    fields = cast(dict[str, list[str]], request.scope.get("sidequest.form", {}))
    return {name: values[0] for name, values in fields.items() if values}


def form_list(request: Request, name: str) -> list[str]:
    return list(cast(dict[str, list[str]], request.scope.get("sidequest.form", {})).get(name, []))


def page(request: Request, template: str, title: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    current = session(request)
    context.setdefault("bare", False)
    base = str(request.scope.get("sidequest.base", root(request)))
    shard_names = connection.shard_names()
    here = path_url(exact_path(request.scope))  # quoted, as page_url quotes it
    body = ENV.get_template(template).render(
        base=base, shard=request.scope.get("sidequest.shard", "default"),
        shard_links=[(name, (base if name == "default" else f"{base}/shards/{name}") + here)
                     for name in shard_names] if len(shard_names) > 1 else [],
        request=request, root=root(request), nonce=request.scope["sidequest.nonce"],
        csrf=current.csrf, flash=current.pop_flash(), page_title=title,
        app_title=settings(request).title, tabs=TABS, version=__version__,
        logged_in=current.user is not None, now=time.time(),
        tab=route_path(request.scope).split("/")[1], **context,
    )
    return HTMLResponse(body, status_code=status_code)


def text(message: str, status_code: int) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=status_code)


def back(request: Request, path: str, message: str | None = None,
         **query: str | int) -> RedirectResponse:
    """303 to ``path`` inside the dashboard (after a POST), with a message for that page."""
    if message:
        session(request).say(message)
    suffix = "?" + urlencode(query) if query else ""
    return RedirectResponse(root(request) + path + suffix, status_code=303)


def place(request: Request) -> dict[str, str]:
    """Where on its list the POSTed form was: the page's query, sent back in the form's hidden
    ``back`` field, reduced to the known parameters with valid values. An action then returns
    to the same page, filter and order. Only a query is taken, never a path or a host (the
    view names the path), so no one can make this a redirect off the dashboard."""
    sent = form(request).get(BACK_FIELD, "")[:1000]
    kept: dict[str, str] = {}
    for name, value in parse_qsl(sent):
        pattern = PLACE_PARAMS.get(name, "")
        if pattern is None:
            kept[name] = value.strip()[:params.MAX_FILTER]
        elif pattern and re.fullmatch(pattern, value):
            kept[name] = value
    return {name: value for name, value in kept.items() if value}


def segment(value: str) -> str:
    """``value`` as one URL path segment: slashes, dots and markup all quoted. A name that
    is not UTF-8 (``lenient.exact`` text) is quoted as its bytes (``q%FF``), which
    ``exact_param`` reads back."""
    try:
        data = lenient.wire(value)
    except UnicodeEncodeError:  # a lone surrogate from JSON ("\\ud800"): no bytes stand for it
        data = value.encode("utf-8", "surrogatepass")
    return quote(data, safe="")


def exact_path(scope: Any) -> str:
    """``route_path`` with the bytes that are not UTF-8 as ``lenient.exact`` text (lone
    surrogates) instead of U+FFFD: the server decodes the path leniently, so a page about a
    queue so named (``/queues/q%FF``) is found again in the raw path the client sent. As
    ``route_path`` when there is nothing to recover, or no raw path to read it from."""
    path, raw_path = route_path(scope), scope.get("raw_path")
    if "\ufffd" not in path or not isinstance(raw_path, bytes):
        return path
    sent = unquote(raw_path.decode("latin-1"), errors="surrogateescape")
    root = str(scope.get("root_path", "")).rstrip("/")
    # Only what decodes to the very path the router matched: never another name.
    for exact in (sent[len(root):] if root and sent.startswith(root) else None, sent):
        if exact is not None and _replaced(exact) == path:
            return exact
    return path


def exact_param(request: Request, name: str, suffix: str = "") -> str:
    """Path parameter ``name`` as the client sent it (see ``exact_path``): the exact name of
    a queue whose name is not UTF-8, which ``segment`` quotes as ``q%FF``. ``suffix`` is
    what the route has after the parameter ("/delete")."""
    value = str(request.path_params[name])
    path = route_path(request.scope)
    if "\ufffd" not in value or not path.endswith(value + suffix):
        return value
    prefix, exact = path[:len(path) - len(value) - len(suffix)], exact_path(request.scope)
    if not (exact.startswith(prefix) and exact.endswith(suffix)):
        return value
    found = exact[len(prefix):len(exact) - len(suffix)]
    return found if _replaced(found) == value else value


def _replaced(exact: str) -> str:
    """``exact`` text as a server decodes its bytes: each that is not UTF-8 as U+FFFD."""
    return lenient.wire(exact).decode("utf-8", "replace")


def path_url(path: str) -> str:
    """A request's (decoded) ``path`` as the path of a URL that leads back to it: each
    segment quoted as ``segment`` quotes it, so a ``?``, ``#`` or ``%`` in a queue's or a
    class's name stays in the name instead of starting a query, a fragment or an escape.
    The server decodes the URL to this very path, so it routes it as it did this request."""
    segments = path.split("/")
    url = segment(segments[0])
    for index, name in enumerate(segments[1:], 1):
        url += _joint(segments[index - 1], name, index, len(segments)) + segment(name)
    return url


#: Path segments a browser resolves away (``/queues/../../etc`` is ``/etc`` to it), quoted
#: or not: the URL standard takes ``%2e%2e`` for ``..`` too.
DOT_SEGMENTS = frozenset({".", ".."})


def _joint(before: str, name: str, index: int, count: int) -> str:
    """The slash before segment ``index`` (of ``count``), quoted where it would leave a dot
    segment on its own: after a dot segment, and before one that ends the path. A name such
    as ``../../etc`` then reads ``..%2F..%2Fetc``, as ``segment`` writes it, and the browser
    keeps it; the leading slash stays, or the link would be relative."""
    at_end = name in DOT_SEGMENTS and index == count - 1 and index > 1
    return "%2F" if before in DOT_SEGMENTS or at_end else "/"


def number(value: float) -> str:
    return f"{value:,.0f}" if isinstance(value, int) or value >= 100 else f"{value:,.2f}"


#: Epoch seconds past which a time read from Redis is odd data, not a date (year 10000).
LATEST_TIME = 253402300800


def ago(seconds: float | None, now: float | None = None) -> str:
    """``3 min ago`` / ``in 2 h`` for an epoch time; ``-`` when unknown: never written (0,
    1970), or odd data another tool left (1e300, NaN)."""
    if seconds is None or not 0 < seconds < LATEST_TIME:
        return "-"
    delta = (now if now is not None else time.time()) - seconds
    span = abs(delta)
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if span < limit:
            amount = f"{span // size:.0f} {unit}"
            break
    else:
        amount = f"{span / 86400:.1f} d"
    return f"{amount} ago" if delta >= 0 else f"in {amount}"


def utc(seconds: float | None) -> str:
    if seconds is None or seconds == 0:  # never written
        return "-"
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError, TypeError):  # 1e300, inf: odd data in Redis
        return "(unreadable time)"


def short_json(value: Any, limit: int = ARGS_IN_TABLE) -> str:
    return cut(_dumps(value), limit)


def full_json(value: Any) -> str:
    text_value = _dumps(value, indent=2, sort_keys=True)
    if len(text_value) <= VALUE_ON_PAGE:
        return text_value
    return text_value[:VALUE_ON_PAGE] + f"\n… ({len(text_value) - VALUE_ON_PAGE:,} more characters)"


def _dumps(value: Any, **options: Any) -> str:
    """JSON for a page. A payload may hold an integer too long for Python to write (Ruby
    writes any): it is shown as a note of its size rather than fail the whole page."""
    try:
        return json.dumps(value, ensure_ascii=False, **options)
    except ValueError:
        return json.dumps(_sized(value), ensure_ascii=False, **options)


def _sized(value: Any) -> Any:
    note = huge_int(value)
    if note is not None:
        return note
    if isinstance(value, dict):
        return {key: _sized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_sized(item) for item in value]
    return value


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 job``, ``2 jobs``, ``1,234 jobs`` (``nouns`` for an irregular plural)."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def duration(seconds: float) -> str:
    """A wait as a person reads it: ``0.25 s``, ``42.5 s``, ``6 min 43 s``, ``2 h 5 min``,
    ``3.2 d`` (a queue's latency can be anything from milliseconds to days)."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{seconds / 86400:.1f} d"


def kilobytes(value: int) -> str:
    return f"{value / 1024:,.0f} MB" if value >= 1024 else f"{value} KB"


@jinja2.pass_context
def page_url(context: jinja2.runtime.Context, **changes: str | int | None) -> str:
    """The current page's URL with some query parameters changed (None removes one)."""
    request: Request = context["request"]
    params = dict(request.query_params)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = str(value)
    # The scope's path is decoded: printed as it is, a queue named "a?b" would link to "a".
    path = path_url(exact_path(request.scope))
    return root(request) + path + ("?" + urlencode(params) if params else "")


#: Bidirectional and invisible formatting characters: printed raw, a job name or argument
#: could show text in another order than it has (U+202E turns "exe.txt" around).
_BIDI = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
#: A lone surrogate: what stands for a byte that is not UTF-8 in an exact name.
_SURROGATE = re.compile("[\ud800-\udfff]")


def cut(value: Any, limit: int = ARGS_IN_TABLE) -> str:
    """A name read from Redis (a class, a tag, an error class) cut to ``limit`` characters
    for a table cell or a heading: another tool can write one of megabytes."""
    text_value = str(value)
    return text_value if len(text_value) <= limit else text_value[: limit - 1] + "…"


def visible(value: Any) -> Any:
    """Every printed value with bidi and invisible controls shown as ``\\u202e``, and none
    longer than a page should hold (a value a template forgot to cut, from odd data)."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup) and (
            len(value) > PRINTED_AT_MOST):
        value = value[:PRINTED_AT_MOST] + f"… ({len(value) - PRINTED_AT_MOST:,} more characters)"
    if isinstance(value, str) and _SURROGATE.search(value):
        # An exact name that is not UTF-8 (or a lone surrogate a JSON string escaped): its
        # surrogates would fail the page's encoding. Written out, markup stays markup.
        written = lenient.shown(value)
        value = markupsafe.Markup(written) if isinstance(value, markupsafe.Markup) else written
    if isinstance(value, str) and _BIDI.search(value):
        shown = _BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
        # Already-escaped markup stays markup: the replacements are plain ASCII.
        return markupsafe.Markup(shown) if isinstance(value, markupsafe.Markup) else shown
    return value


def milliseconds(ms: float) -> str:
    """A run time: ``522.5 ms`` below a second, then as ``duration`` writes it, so that a
    total and an average in one row read in one unit."""
    return f"{ms:.1f} ms" if ms < 1000 else duration(ms / 1000)


ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("sidequest.web", "templates"),
    autoescape=True,  # every template, whatever its name: nothing is printed unescaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=visible,
)
ENV.filters.update(seg=segment, path=path_url, number=number, ago=ago, utc=utc,
                   short_json=short_json, cut=cut,
                   full_json=full_json, kb=kilobytes, plural=plural,
                   duration=duration, ms=milliseconds)
ENV.globals.update(page_url=page_url)
