"""The dashboard with several shards (independent Redis servers): ``/shards/NAME/...`` is the
dashboard of shard NAME, everything else the default shard's.

The middleware moves ``/shards/NAME`` from the request's path into its root path, as a mount
would, so that every link, form and redirect a page builds from its root stays on the shard it
shows, and a POSTed action always acts on the shard named in its own URL (never on a choice
kept elsewhere, which another tab could have changed). It runs inside the Guard: the login,
session cookie and CSRF checks see the real path and root.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sidequest import connection
from sidequest.web.render import route_path

PREFIX = "/shards/"


class ShardScope:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        base = str(scope.get("root_path", "")).rstrip("/")
        path = route_path(scope) if scope["type"] == "http" else ""
        if not path.startswith(PREFIX):
            scope["sidequest.base"], scope["sidequest.shard"] = base, connection.current_shard()
            await self.app(scope, receive, send)
            return
        name, _, rest = path[len(PREFIX):].partition("/")
        names = connection.shard_names()
        if name not in names:
            response = PlainTextResponse(
                f"No shard named {name!r}; the shards are: {', '.join(names)}", status_code=404)
            await response(scope, receive, send)
            return
        root = f"{base}{PREFIX}{name}"
        inner = {**scope, "root_path": root, "path": f"{root}/{rest}",
                 "sidequest.base": base, "sidequest.shard": name}
        with connection.on_shard(name):  # the request's Redis calls, in any thread it uses
            await self.app(inner, receive, send)

