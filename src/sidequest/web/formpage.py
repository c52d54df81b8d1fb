"""Where a POSTed form came from, to send the browser back there with a GET: after a login
that the form's ended session needed (security.py), or from the page that says Redis was
unreachable and the action was not done (errors.py). Every target stays on the dashboard.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from starlette.requests import Request

from sidequest.web import render
from sidequest.web.render import path_url
from sidequest.web.shards import PREFIX as SHARD_PREFIX

SAFE_METHODS = frozenset({"GET", "HEAD"})
#: Paths reachable without logging in: the login form, logging out, and our own CSS/JS.
PUBLIC_PATHS = frozenset({"/login", "/logout"})


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after logging in: a path inside the dashboard, never another site."""
    root = render.root(request)
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        # A browser resolves "..", "." and their %2e spellings: /sq/../../accounts leaves
        # the dashboard for the rest of the site.
        segments = unquote(parts.path).split("/")
        if (not parts.scheme and not parts.netloc and parts.path.startswith(root + "/")
                and "." not in segments and ".." not in segments):
            return target
    return root + "/"


def form_page(request: Request, path: str) -> str:
    """The page a POSTed form was on (``path`` is where it posted to), as a URL path (and
    query) under the dashboard: the Referer when it is one of our pages (our pages send it
    to their own origin, see ``referrer-policy``), else the page of the tab the form posted
    to: a form's own path is not always a page (the Delete on /queues posts to
    /queues/NAME/delete). Either passes the login page's own ``safe_next``, so it never
    leads off the dashboard."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc.lower() == request.headers.get("host", "").lower():
        target = referer.path + ("?" + referer.query if referer.query else "")
        # Not the login page itself: logging in would lead back to it.
        if safe_next(request, target) == target and referer.path[len(root):] not in PUBLIC_PATHS:
            return target
    return safe_next(request, root + path_url(tab_of(path)))


def tab_of(path: str) -> str:
    """``/retries`` for ``/retries/all/delete``; ``/shards/eu/queues`` for
    ``/shards/eu/queues/default/delete``: a page every form's path has above it."""
    shard = ""
    if path.startswith(SHARD_PREFIX):
        name, _, path = path[len(SHARD_PREFIX):].partition("/")
        shard, path = SHARD_PREFIX + name, "/" + path
    return shard + "/" + path.split("/")[1]
