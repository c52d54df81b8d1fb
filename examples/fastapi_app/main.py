"""FastAPI with Sidequest: jobs pushed from async routes without blocking the event loop, the
dashboard mounted behind the app's own check, and (optionally) a worker inside the app's
process for small deployments, started and stopped by the app's lifespan.

    uvicorn examples.fastapi_app.main:app           # the API (and, with RUN_WORKER=1, a worker)
    sidequest -r examples.fastapi_app.main          # or run the worker on its own (production)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from sidequest import Job
from sidequest.web import create_app


class SendWelcome(Job):
    def perform(self, user_id: int) -> None:
        print(f"welcome, user {user_id}")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    worker = None
    if os.environ.get("RUN_WORKER") == "1":
        # Imported only here: the worker's code is not loaded by an API-only process.
        from sidequest.config import build  # noqa: PLC0415
        from sidequest.worker import embed  # noqa: PLC0415

        worker = embed(build(concurrency=5))  # threads of its own, beside the event loop
    try:
        yield
    finally:
        if worker is not None:
            await run_in_threadpool(worker.stop)  # finishes running jobs, pushes back the rest


app = FastAPI(lifespan=lifespan)


@app.post("/users/{user_id}")
async def create_user(user_id: int) -> dict[str, str | None]:
    # A push is one short Redis round trip; a thread keeps it off the event loop.
    jid = await run_in_threadpool(SendWelcome.perform_async, user_id)
    return {"jid": jid}


async def is_admin(request: Request) -> bool:
    return request.headers.get("x-role") == "admin"  # stands in for the app's own login


app.mount("/sidequest", create_app(auth=is_admin, login_url="/login"))
