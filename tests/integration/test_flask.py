"""sidequest.contrib.flask with a real Flask app: app.config sets the Redis, jobs run inside
the app's application context in a worker, and the dashboard is mounted behind the app's
own session check (an admin sees it, anyone else is refused or sent to log in)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, current_app, session

import sidequest
from helpers import FAST, Output, kill_leftovers, running_worker, wait_for
from redis_server import RedisServer, free_port
from sidequest import Job, connection, middleware
from sidequest.contrib.flask import Sidequest
from sidequest.errors import ConfigError

seen: list[Any] = []


class UsesApp(Job):
    def perform(self, key: str) -> None:
        seen.append(current_app.config[key])  # raises outside an application context


def make_app(redis_url: str) -> Flask:
    app = Flask("shop")
    app.config.update(SECRET_KEY="flask-test-secret", SIDEQUEST_REDIS_URL=redis_url,
                      SIDEQUEST_LOGIN_URL="/login", GREETING="hello from the app")

    @app.post("/become/<role>")
    def become(role: str) -> str:
        session["role"] = role
        return "ok"

    @app.post("/signup")
    def signup() -> str:
        return UsesApp.perform_async("GREETING") or ""

    Sidequest(app, auth=lambda: session.get("role") == "admin")
    return app


def make_app_with(redis_url: str, options: dict[str, Any] | None = None,
                  **settings: Any) -> Flask:
    """The app with other settings (``options``: the extension's dashboard options); its job
    middleware is removed at once (not needed)."""
    app = Flask("shop")
    app.config.update({"SECRET_KEY": "flask-test-secret", "SIDEQUEST_REDIS_URL": redis_url,
                       **settings})

    @app.post("/become/<role>")
    def become(role: str) -> str:
        session["role"] = role
        return "ok"

    ext = Sidequest(app, auth=lambda: session.get("role") == "admin", **(options or {}))
    middleware.server.remove(ext.in_app_context)
    return app


class UsesAppAsync(Job):
    async def perform(self, key: str) -> None:
        seen.append((current_app.config[key], threading.current_thread().name))


@pytest.fixture
def app(redis_url: str) -> Iterator[Flask]:
    seen.clear()
    made = make_app(redis_url)
    try:
        yield made
    finally:
        ext = made.extensions["sidequest"]
        middleware.server.remove(ext.in_app_context)


def test_jobs_pushed_by_the_app_run_inside_its_context(app: Flask, r: redis.Redis) -> None:
    jid = app.test_client().post("/signup").text
    assert jid and r.llen("queue:default") == 1
    with running_worker():
        wait_for(lambda: seen, what="the job to run")
    assert seen == ["hello from the app"]


def test_async_jobs_run_on_the_event_loop_inside_the_apps_context(app: Flask) -> None:
    # The middleware's coroutine form: without it each async job held a worker thread, and
    # at most -c of them ran at once.
    from sidequest.worker.async_jobs import chain_is_async

    assert chain_is_async()
    UsesAppAsync.perform_async("GREETING")
    with running_worker():
        wait_for(lambda: seen, what="the async job to run")
    assert seen == [("hello from the app", "sidequest-asyncio")]


def test_the_dashboard_is_behind_the_apps_own_check(app: Flask) -> None:
    client = app.test_client()
    refused = client.get("/sidequest/", headers={"Accept": "text/html"})
    assert refused.status_code == 303 and refused.headers["Location"] == "/login?next=/sidequest/"
    client.post("/become/customer")  # logged in at once, as a user the check refuses
    back = client.get("/sidequest/", headers={"Accept": "text/html"})
    assert back.status_code == 403 and "log in as a user who may" in back.text
    client.post("/become/admin")
    page = client.get("/sidequest/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Dashboard" in page.text
    assert client.get("/sidequest/queues").status_code == 200


def test_a_dashboard_without_a_check_is_refused(redis_url: str) -> None:
    app = Flask("open")
    with pytest.raises(ConfigError, match="needs auth="):
        Sidequest(app)
    app.config["SIDEQUEST_DASHBOARD"] = None
    ext = Sidequest(app)  # no dashboard, nothing to protect
    middleware.server.remove(ext.in_app_context)


def test_the_prefix_is_mounted_however_it_is_written(redis_url: str) -> None:
    """Without its leading slash the dashboard was mounted nowhere, without a word."""
    for written in ("ops", "/ops/", " ops"):
        app = make_app_with(redis_url, SIDEQUEST_DASHBOARD=written)
        client = app.test_client()
        client.post("/become/admin")
        assert client.get("/ops/queues").status_code == 200, written
    with pytest.raises(ConfigError, match="would cover the whole app"):
        make_app_with(redis_url, SIDEQUEST_DASHBOARD="/")


def test_a_misspelt_setting_is_pointed_out(redis_url: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="sidequest"):
        make_app_with(redis_url, SIDEQUEST_REDIS="redis://elsewhere:6379/0")
    assert caplog.messages == [
        "Sidequest(app): app.config['SIDEQUEST_REDIS'] is not a setting of the extension and"
        " is ignored; did you mean 'SIDEQUEST_REDIS_URL'?"]


def test_the_standalone_dashboards_password_setting_says_what_to_use(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # Its closest setting by spelling is SIDEQUEST_WEB_SECRET, which is no password.
    with caplog.at_level("WARNING", logger="sidequest"):
        make_app_with(redis_url, SIDEQUEST_WEB_PASSWORD="correct horse battery staple")
    assert caplog.messages == [
        "Sidequest(app): app.config['SIDEQUEST_WEB_PASSWORD'] is not a setting of the extension"
        " and is ignored; the dashboard in the app is guarded by Sidequest(app, auth=...) (the"
        " app's own login), or Sidequest(app, password=...)"]


class Report(Job):
    queue = "reports"

    def perform(self, n: int) -> None:
        pass


@pytest.fixture
def shard(second_redis: RedisServer) -> Iterator[redis.Redis]:
    """The second Redis, emptied: shard "reports" of these tests."""
    with second_redis.client() as other:
        other.flushall()
        yield other


def test_shards_come_from_app_config(redis_url: str, r: redis.Redis, shard: redis.Redis,
                                     second_redis: RedisServer,
                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="sidequest"):
        make_app_with(redis_url, SIDEQUEST_SHARDS={"reports": second_redis.url},
                      SIDEQUEST_SHARD_QUEUES={"reports": "reports"})
    assert caplog.messages == []  # no "did you mean" for the settings it reads
    Report.perform_async(1)
    assert shard.llen("queue:reports") == 1 and not r.exists("queue:reports")


def test_shards_the_app_configured_in_code_survive_the_extension(
        redis_url: str, r: redis.Redis, shard: redis.Redis, second_redis: RedisServer) -> None:
    sidequest.configure(redis_url, shards={"reports": second_redis.url},
                        shard_queues={"reports": "reports"})
    make_app_with(redis_url)  # SIDEQUEST_REDIS_URL set, no SIDEQUEST_SHARDS
    Report.perform_async(4242)
    assert shard.llen("queue:reports") == 1 and not r.exists("queue:reports")


def test_client_options_the_app_configured_in_code_survive_the_extension(
        redis_url: str) -> None:
    # A push must not wait on a hung Redis for longer than the app allowed.
    sidequest.configure(redis_url, socket_timeout=1.5)
    make_app_with(redis_url)  # SIDEQUEST_REDIS_URL set: the URL is configured again
    assert connection.client().connection_pool.connection_kwargs["socket_timeout"] == 1.5


def test_a_bad_shard_setting_names_the_extension(redis_url: str) -> None:
    with pytest.raises(ConfigError, match=r"^Sidequest\(app\): app.config's SIDEQUEST_ settings: "
                                          r"shard_queues routes queue 'reports' to shard "
                                          r"'report', which is not defined"):
        make_app_with(redis_url, SIDEQUEST_SHARD_QUEUES={"reports": "report"})


def post_form_across(first: Flask, second: Flask) -> Any:
    """A queue's Delete form loaded from ``first``'s dashboard, posted to ``second``'s with the
    same browser cookies: accepted only when the two dashboards sign sessions alike."""
    import re

    UsesApp.set(queue="doomed").perform_async("GREETING")
    client = first.test_client()
    client.post("/become/admin")
    html = client.get("/sidequest/queues", headers={"Accept": "text/html"}).text
    form = re.search(r'action="(/sidequest/queues/doomed/delete)".*?name="csrf" '
                     r'value="([^"]+)"', html, re.DOTALL)
    assert form, "no Delete form for the queue"
    other = second.test_client()
    for cookie in client._cookies.values():  # the browser's cookies, sent to the other
        other.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    return other.post(form.group(1), data={"csrf": form.group(2)},
                      headers={"Origin": "http://localhost"})


def test_a_form_from_one_process_posts_to_another(redis_url: str, r: redis.Redis) -> None:
    """Two app processes (two app objects here, each with its dashboard) sign alike, from the
    app's secret_key: a form loaded from one is accepted by the other."""
    done = post_form_across(make_app_with(redis_url), make_app_with(redis_url))
    assert done.status_code in (302, 303), done.text[:300]
    assert r.llen("queue:doomed") == 0


def test_the_session_secret_comes_from_app_config_first(
        redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """app.config['SIDEQUEST_WEB_SECRET'] signs the dashboard's sessions, over the app's
    SECRET_KEY and over $SIDEQUEST_WEB_SECRET (as app.config's other settings win over the
    environment). It used to be logged as a misspelling and ignored."""
    from sidequest.web.app import PASSWORD_ENV, SECRET_ENV

    secret = "c" * 32
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setenv(SECRET_ENV, "e" * 32)
    with caplog.at_level("WARNING", logger="sidequest"):
        from_config = make_app_with(redis_url, SIDEQUEST_WEB_SECRET=secret)
    assert caplog.messages == []  # no "did you mean": it is a setting
    # Signs alike with a dashboard given the same secret in code, so it signed with it.
    done = post_form_across(from_config, make_app_with(redis_url, {"secret_key": secret}))
    assert done.status_code in (302, 303), done.text[:300]
    assert r.llen("queue:doomed") == 0
    # And not with one signing with the environment's secret: that one lost.
    refused = post_form_across(from_config, make_app_with(redis_url))
    assert refused.status_code == 403, refused.text[:300]
    assert r.llen("queue:doomed") == 1


def test_an_app_without_a_secret_key_is_warned_of_forms_failing_across_processes(
        redis_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("SIDEQUEST_WEB_SECRET", raising=False)
    with caplog.at_level("WARNING", logger="sidequest"):
        make_app_with(redis_url, SECRET_KEY=None)
    (warning,) = [m for m in caplog.messages if "SECRET_KEY" in m]
    assert "gunicorn -w N" in warning and "set app.config['SECRET_KEY']" in warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="sidequest"):
        make_app_with(redis_url)  # with one: silent
        monkeypatch.setenv("SIDEQUEST_WEB_SECRET", "s" * 32)
        make_app_with(redis_url, SECRET_KEY=None)  # the variable signs: silent too
    assert caplog.messages == []


def test_a_short_secret_in_app_config_is_refused(redis_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIDEQUEST_WEB_SECRET", raising=False)
    chain = list(middleware.server)
    with pytest.raises(ConfigError, match=r"SIDEQUEST_WEB_SECRET or secret_key=\) is 5 bytes"):
        make_app_with(redis_url, SIDEQUEST_WEB_SECRET="short")
    # Refused whole: no job middleware left behind (a sync one would turn every later
    # async job in this process into a thread's asyncio.run, out of reach of cancel()).
    assert list(middleware.server) == chain


def test_the_signing_key_comes_from_the_app_unless_one_is_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sidequest.web.app import SECRET_ENV, secret_from_host

    monkeypatch.delenv(SECRET_ENV, raising=False)
    derived = secret_from_host("flask-test-secret")
    assert derived == secret_from_host(b"flask-test-secret") and derived is not None
    assert len(derived) == 32 and b"flask-test-secret" not in derived
    assert secret_from_host(None) is None and secret_from_host("") is None
    monkeypatch.setenv(SECRET_ENV, "s" * 32)
    assert secret_from_host("flask-test-secret") is None  # the variable wins


#: The README's Flask app, two dashboard requests whose responses are never read, then exit.
#: a2wsgi's bridge used to leave each such request's ASGI task waiting for good for the rest
#: of its response to be read: "Task was destroyed but it is pending!" at exit.
UNREAD_RESPONSES = """
import asyncio, gc, os
from flask import Flask, session
from sidequest.contrib.flask import Sidequest

app = Flask(__name__)
app.config["SECRET_KEY"] = "flask-test-secret"
app.config["SIDEQUEST_REDIS_URL"] = os.environ["TEST_REDIS_URL"]
app.config["SIDEQUEST_LOGIN_URL"] = "/login"
Sidequest(app, auth=lambda: session.get("role") == "admin")
client = app.test_client()
statuses = [client.get(path, headers={"Accept": "text/html"}).status_code
            for path in ("/sidequest/", "/sidequest/login")]
# Counted, not kept: a task still referenced at exit is never reported destroyed.
pending = sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done())
print(statuses, "pending tasks:", pending)
"""


def test_unread_dashboard_responses_leave_no_task_behind(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDEQUEST_")}
    result = subprocess.run([sys.executable, "-c", UNREAD_RESPONSES],
                            env={**env, "TEST_REDIS_URL": redis_url}, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "pending tasks: 0" in result.stdout, result.stdout
    assert "Task was destroyed" not in result.stderr, result.stderr


#: The app-factory layout: create_app() sets up the extension and registers a blueprint
#: whose module imports the jobs, so only a worker that calls create_app() knows them.
FACTORY_APP = """
import os
from flask import Flask
from sidequest.contrib.flask import Sidequest

sq = Sidequest(auth=lambda: True)


def create_app(name="web"):
    app = Flask(__name__)
    app.config.update(SECRET_KEY="flask-test-secret", NAME=name,
                      SIDEQUEST_REDIS_URL=os.environ["TEST_REDIS_URL"])
    sq.init_app(app)
    from fsqapp.views import pages

    app.register_blueprint(pages)
    return app
"""
FACTORY_VIEWS = """
from flask import Blueprint

from fsqapp.jobs import Greet  # noqa: F401

pages = Blueprint("pages", __name__)
"""
FACTORY_JOBS = """
from flask import current_app
from sidequest import Job


class Greet(Job):
    def perform(self):
        print("greeted by", current_app.config["NAME"], flush=True)
"""
STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture
def factory_project(tmp_path: Path) -> Iterator[Path]:
    """A project root holding the ``fsqapp`` package, and fast.toml (the test timers)."""
    package = tmp_path / "fsqapp"
    package.mkdir()
    for name, text in (("__init__", FACTORY_APP), ("views", FACTORY_VIEWS),
                       ("jobs", FACTORY_JOBS)):
        (package / f"{name}.py").write_text(text)
    (tmp_path / "fast.toml").write_text("".join(f"{k} = {v}\n" for k, v in FAST.items()))
    yield tmp_path
    kill_leftovers(STARTED)


def worker_on(project: Path, redis_url: str, target: str) -> tuple[subprocess.Popen[str],
                                                                    Output]:
    """``sidequest -r target`` started in ``project``, with $REDIS_URL on a port nothing
    listens on: only the app's config names the suite's Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDEQUEST_")}
    env.update(TEST_REDIS_URL=redis_url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    proc = subprocess.Popen([sys.executable, "-m", "sidequest", "-r", target, "-c", "1", "-C",
                             "fast.toml"], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    STARTED.append(proc)
    return proc, Output(proc)


def test_the_worker_calls_the_app_factory_it_is_given(factory_project: Path,
                                                      redis_url: str) -> None:
    # Before: "No module named 'fsqapp:create_app()'"; with -r fsqapp, no job class and the
    # Redis of $REDIS_URL, as create_app() never ran.
    proc, out = worker_on(factory_project, redis_url, "fsqapp:create_app('worker')")
    out.wait_for(f"started: strict, 1 thread, 100 async jobs at once, queues default,"
                 f" Redis {redis_url}")
    sidequest.enqueue("fsqapp.jobs.Greet")
    out.wait_for("greeted by worker")  # in the app's context, the factory's argument
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not any("no job classes" in line for line in out.lines), out.lines


def test_a_factory_package_given_without_the_call_says_to_call_it(factory_project: Path,
                                                                  redis_url: str) -> None:
    proc, out = worker_on(factory_project, redis_url, "fsqapp")
    line = out.wait_for("no job classes are loaded")
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    assert line.endswith("fsqapp defines create_app() but nothing calls it: to make the app"
                         " (and import the jobs it imports), pass -r 'fsqapp:create_app()'")


def test_redis_down_the_page_names_the_app_config_setting(redis_url: str) -> None:
    # Before: it said to set SIDEQUEST_REDIS_URL or REDIS_URL in the environment, which
    # app.config's SIDEQUEST_REDIS_URL overrides: changing them would change nothing.
    down = f"redis://127.0.0.1:{free_port()}/0"
    client = make_app_with(down).test_client()
    client.post("/become/admin")
    page = client.get("/sidequest/queues", headers={"Accept": "text/html"})
    assert page.status_code == 503
    text = " ".join(page.text.split())
    assert f"could not reach Redis at <code>{down}</code>" in text
    assert ('set it with <code>app.config["SIDEQUEST_REDIS_URL"]</code>, which wins over the'
            " environment variables <code>SIDEQUEST_REDIS_URL</code> and <code>REDIS_URL</code>)"
            ) in text


def test_an_extension_never_given_its_app_is_pointed_out(factory_project: Path,
                                                         redis_url: str) -> None:
    # -r fsqapp.jobs loads the jobs and, through the package, makes the extension, but no
    # create_app() runs: before, no word, and the jobs failed on current_app (or the worker
    # watched the Redis of $REDIS_URL rather than app.config's).
    proc, out = worker_on(factory_project, redis_url, "fsqapp.jobs")
    line = out.wait_for("init_app(app) never ran")
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    assert line.endswith("start the worker on the app factory: -r 'fsqapp:create_app()'"), line


def test_an_extension_given_its_app_is_not_pointed_out(factory_project: Path,
                                                       redis_url: str) -> None:
    proc, out = worker_on(factory_project, redis_url, "fsqapp:create_app()")
    out.wait_for("started: strict")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not any("never ran" in line for line in out.lines), out.lines
