"""Query parameters, clamped on the server: a number that sizes a loop or a Redis command is
always brought into its range (Sidekiq's CVE-2022-23837 and CVE-2023-26141), a choice is
looked up in a fixed table, and free text is cut short."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request

DAYS = (1, 180)
POLL_SECONDS = (2, 60)
PAGE_SIZE = (1, 100)
#: A page number beyond any real data; deeper pages are empty anyway.
MAX_PAGE = 10_000_000
MAX_FILTER = 100


def clamp(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        number = default
    return max(low, min(number, high))


def integer(request: Request, name: str, default: int, bounds: tuple[int, int]) -> int:
    raw = request.query_params.get(name)
    return clamp(raw[:20] if raw is not None else None, default, *bounds)


def page(request: Request) -> int:
    return integer(request, "page", 1, (1, MAX_PAGE))


def count(request: Request, default: int = 25) -> int:
    return integer(request, "count", default, PAGE_SIZE)


def choice(request: Request, name: str, choices: Collection[str], default: str) -> str:
    value = request.query_params.get(name, default)
    return value if value in choices else default


def text(request: Request, name: str, limit: int = MAX_FILTER) -> str:
    return request.query_params.get(name, "").strip()[:limit]


def last_page(size: int, per_page: int) -> int:
    return max(1, -(-size // per_page))
