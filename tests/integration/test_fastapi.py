"""The FastAPI recipe (examples/fastapi_app): async routes push jobs, the app's lifespan runs
an in-process worker that runs them and stops with the app, and the mounted dashboard obeys
the app's own check. Real FastAPI, real Redis."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_push_from_a_route_run_by_the_lifespan_worker(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("RUN_WORKER", "1")
    main = importlib.import_module("examples.fastapi_app.main")
    with TestClient(main.app) as client:  # runs the lifespan: the worker starts
        processes = wait_for(lambda: r.smembers("processes"), what="the worker to register")
        jid = client.post("/users/42").json()["jid"]
        assert isinstance(jid, str) and len(jid) == 24
        wait_for(lambda: "welcome, user 42" in capsys.readouterr().out, what="the job to run")
        refused = client.get("/sidequest/", headers={"Accept": "text/html"}, follow_redirects=False)
        assert refused.status_code == 303
        assert refused.headers["location"] == "/login?next=/sidequest/"
        page = client.get("/sidequest/", headers={"x-role": "admin"})
        assert page.status_code == 200 and "Dashboard" in page.text
    # The lifespan's exit stopped the worker: it left the process set.
    assert not r.smembers("processes") & processes
    sys.modules.pop("examples.fastapi_app.main", None)
