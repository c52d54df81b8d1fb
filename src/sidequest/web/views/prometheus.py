"""``/prometheus``: the whole Redis's figures in Prometheus's text format, for a scraper.

Behind the dashboard's login like every page; a scraper, which cannot log in, sends
``Authorization: Bearer <token>`` with the token set in ``SIDEQUEST_PROMETHEUS_TOKEN`` (see
web/security.py). Needs the ``prometheus`` extra; without it the page says so.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response


def _exposition() -> tuple[bytes, str]:
    # Imported here: the dashboard works without the extra, and says what this page needs.
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415
    from prometheus_client.exposition import CONTENT_TYPE_LATEST  # noqa: PLC0415

    from sidequest.contrib.prometheus import SidequestCollector  # noqa: PLC0415

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SidequestCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


async def prometheus(request: Request) -> Response:
    try:
        body, content_type = await run_in_threadpool(_exposition)
    except ImportError:
        return PlainTextResponse("Prometheus metrics need prometheus-client: "
                                 "pip install 'sidequest[prometheus]'", status_code=501)
    return Response(body, media_type=content_type)
