"""A list page of large jobs keeps a few short strings per row, not the jobs: what the page is
rendered from (and what a request leaves behind) stays small however large the jobs are."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from sidequest.web import render
from web_helpers import Client, enqueue, failed, job

pytestmark = pytest.mark.redis

BIG = "x" * 1_000_000


def held(value: Any, seen: set[int] | None = None) -> int:
    """Bytes of every str and bytes reachable from ``value`` (containers, objects' fields)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, (str, bytes)):
        return sys.getsizeof(value)
    if isinstance(value, dict):
        return sum(held(k, seen) + held(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return sum(held(item, seen) for item in value)
    fields = getattr(value, "__dict__", None)
    return held(fields, seen) if isinstance(fields, dict) else 0


@pytest.fixture
def contexts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """What each page is rendered from."""
    seen: list[dict[str, Any]] = []
    original = render.page

    def recording(request: Any, template: str, title: str, status_code: int = 200,
                  **context: Any) -> Any:
        seen.append(context)
        return original(request, template, title, status_code, **context)

    monkeypatch.setattr(render, "page", recording)
    yield seen


@pytest.mark.parametrize("path", ["/queues/bigq", "/queues/bigq?direction=asc", "/retries",
                                  "/retries?substr=BigJob", "/morgue"])
def test_rows_of_large_jobs_hold_no_job(client: Client, r: redis.Redis,
                                        contexts: list[dict[str, Any]], path: str) -> None:
    enqueue(r, "bigq", *(job(f"{n:024d}", "BigJob", "bigq", args=[BIG]) for n in range(3)))
    r.zadd("retry", {failed(f"r{n:023d}", klass="BigJob", args=[BIG]): n for n in range(3)})
    r.zadd("dead", {b"\xff" + BIG.encode(): 1})  # unreadable: shown by its first characters
    answer = client.get(path)
    assert answer.status_code == 200 and len(answer.content) < 100_000
    (context,) = [c for c in contexts if "jobs" in c or "rows" in c]
    rows = context.get("jobs", context.get("rows"))
    assert len(rows) >= 1
    assert held(rows) < 20_000 * len(rows), held(rows)
