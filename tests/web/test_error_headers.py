"""A 500 for an error no view expected carries the headers every other response has
(docs/security.md), Cross-Origin-Opener-Policy included, and HSTS under https=True."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from sidequest.web import create_app
from web_helpers import Client

EVERY_RESPONSE = ("content-security-policy", "x-content-type-options", "x-frame-options",
                  "referrer-policy", "cross-origin-opener-policy", "cache-control")


def failing(**options: object) -> Starlette:
    app = create_app(insecure=True, **options)  # type: ignore[arg-type]

    async def boom(request: object) -> None:
        raise RuntimeError("a bug in a view")

    app.router.add_route("/boom", boom)
    return app


@pytest.mark.parametrize("https", [False, True])
def test_a_500_carries_the_headers_of_every_response(https: bool) -> None:
    app = failing(https=https)
    with Client(app, raise_server_exceptions=False) as client:
        ordinary = client.get("/static/app.css")
        answer = client.get("/boom")
    assert answer.status_code == 500
    missing = [name for name in EVERY_RESPONSE if name not in answer.headers]
    assert not missing, missing
    assert answer.headers["cross-origin-opener-policy"] == "same-origin"
    assert ordinary.headers["cross-origin-opener-policy"] == "same-origin"
    assert ("strict-transport-security" in answer.headers) is https
