"""Findings of a Flask user's walkthrough: middleware registered before ``Sidequest(app)``
runs inside the app's context, the README's recipe for the app's context in the testing
modes works, and an environment Redis URL that app.config overrides is pointed out."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, current_app
from flask.globals import app_ctx
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from helpers import readme_block, running_worker, wait_for
from sidequest import Job, metrics, middleware
from sidequest.contrib.flask import Sidequest
from sidequest.contrib.sqlalchemy import session_per_job

#: What the middleware below saw after each job: the app's name, read from current_app.
after_job: list[str] = []


def needs_the_app(job: Any, payload: dict[str, Any], queue: str,
                  call_next: Callable[[], Any]) -> Any:
    """A server middleware whose after-part reads current_app: it raises "Working outside of
    application context" when the app's context has ended before it."""
    result = call_next()
    after_job.append(current_app.name)
    return result


#: As Flask-SQLAlchemy's db.session: one session per application context.
db_session: scoped_session[Session] = scoped_session(
    sessionmaker(create_engine("sqlite://")),
    scopefunc=lambda: id(app_ctx._get_current_object()))  # type: ignore[attr-defined]


class CommitsInTheApp(Job):
    def perform(self) -> None:
        db_session.execute(text("select 1"))
        db_session.commit()


@pytest.fixture
def app_after_middleware(redis_url: str) -> Iterator[Sidequest]:
    """The walkthrough's order: the middleware is registered in the app's module before the
    extension is given the app."""
    after_job.clear()
    middleware.server.add(needs_the_app)
    per_job = session_per_job(db_session)
    app = Flask("shop")
    app.config.update(SIDEQUEST_REDIS_URL=redis_url, SIDEQUEST_DASHBOARD=None)
    ext = Sidequest(app)
    try:
        yield ext
    finally:
        for added in (needs_the_app, per_job, ext.in_app_context):
            middleware.server.remove(added)


def test_middleware_registered_before_the_extension_runs_inside_the_apps_context(
        app_after_middleware: Sidequest, r: redis.Redis) -> None:
    # Before: the job committed, then failed with "Working outside of application context"
    # from scoped_session.remove(), and went to the retry set.
    CommitsInTheApp.perform_async()
    with running_worker():
        chain = list(middleware.server)
        wait_for(lambda: after_job or r.zcard("retry"), what="the job to end")
    assert r.zcard("retry") == 0, r.zrange("retry", 0, -1)  # the job's error, if it failed
    assert after_job == ["shop"]
    # The worker's metrics recorder stays outermost, the app's context next outermost.
    outer, context = chain.index(metrics.recorder), chain.index(app_after_middleware.in_app_context)
    assert outer == 0 and outer < context < chain.index(needs_the_app)


FACTORY = """
from flask import Flask
from sidequest.contrib.flask import Sidequest


def create_app():
    app = Flask("shop")
    app.config["SIDEQUEST_DASHBOARD"] = None
    Sidequest(app)
    return app
"""
JOBS = """
from flask import current_app, g
from sidequest import Job

seen = []


class Remember(Job):
    def perform(self, n):
        assert "job" not in g, f"g kept job {g.job} of an earlier job"
        g.job = n
        seen.append((current_app.name, n))
"""
TESTS = """
from shop.jobs import Remember, seen
from sidequest import testing


def test_drained_jobs_run_in_the_apps_context_each_with_its_own_g():
    seen.clear()
    Remember.perform_async(1)
    Remember.perform_async(2)
    assert Remember.drain() == 2
    assert seen == [("shop", 1), ("shop", 2)]


def test_inline_jobs_too():
    seen.clear()
    with testing.inline():
        Remember.perform_async(3)
    assert seen == [("shop", 3)]
"""


def test_the_readmes_recipe_runs_drained_jobs_in_the_apps_context(tmp_path: Path) -> None:
    # Before: the README did not say how; a drained job's current_app failed.
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text(FACTORY)
    (tmp_path / "shop" / "jobs.py").write_text(JOBS)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(readme_block("readme:flask-testing"))
    (tmp_path / "tests" / "test_jobs.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SIDEQUEST_") and k != "REDIS_URL"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout


def test_an_environment_url_that_app_config_overrides_is_pointed_out(
        redis_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    variable = "SIDEQUEST_REDIS_URL"
    # Before: the variable lost to app.config without a word, while `sidequest stats` and
    # `status` went on reading it.
    for name in ("SIDEQUEST_REDIS_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "redis://:hunter2@elsewhere:6379/3")
    app = Flask("shop")
    app.config.update(SIDEQUEST_REDIS_URL=redis_url, SIDEQUEST_DASHBOARD=None)
    with caplog.at_level("WARNING", logger="sidequest"):
        ext = Sidequest(app)
    middleware.server.remove(ext.in_app_context)
    assert caplog.messages == [
        f"Sidequest(app): Redis: using {redis_url} (app.config['SIDEQUEST_REDIS_URL']), not"
        f" redis://:***@elsewhere:6379/3 (${variable}): app.config wins over the environment,"
        f" in this app and in a worker started on it with -r (unless its settings file or"
        f" --redis-url names another); `sidequest stats` and `sidequest status`, which do not"
        f" load the app, use ${variable}'s. Set $SIDEQUEST_REDIS_URL to app.config's URL (or"
        f" unset ${variable}) so that all of them use one Redis"]
    caplog.clear()
    monkeypatch.setenv(variable, redis_url)  # the same Redis: nothing to say
    with caplog.at_level("WARNING", logger="sidequest"):
        ext = Sidequest(app)
    middleware.server.remove(ext.in_app_context)
    assert caplog.messages == []
    caplog.clear()
    assert redis_url.endswith("/0")
    monkeypatch.setenv(variable, redis_url.removesuffix("/0"))  # no database 0: the same
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")  # the app's own, for its cache
    with caplog.at_level("WARNING", logger="sidequest"):
        ext = Sidequest(app)
    middleware.server.remove(ext.in_app_context)
    assert caplog.messages == []


def test_jobs_run_in_the_app_made_last(redis_url: str) -> None:
    # Each Sidequest(app) went to the front: jobs ran in the context of the first app made
    # in the process (a test suite makes one per test), with its configuration.
    made = []
    for name in ("first", "second"):
        app = Flask(name)
        app.config.update(SIDEQUEST_REDIS_URL=redis_url, SIDEQUEST_DASHBOARD=None)
        made.append(Sidequest(app))
    contexts = [entry for entry in middleware.server
                if any(entry is ext.in_app_context for ext in made)]
    try:
        assert contexts == [made[1].in_app_context]
    finally:
        for entry in contexts:
            middleware.server.remove(entry)
