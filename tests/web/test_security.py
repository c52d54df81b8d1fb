"""Dashboard security (reliability.md S1-S5): login on every route, CSRF and same-origin on
every state change, headers, clamped parameters, constant-time password check (the login
limiter is in test_login_limiter.py)."""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

import pytest
import redis
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from sidequest.errors import ConfigError
from sidequest.web import create_app
from sidequest.web.session import COOKIE
from web_helpers import (
    CSRF,
    HTML,
    PASSWORD,
    SAME_ORIGIN,
    Client,
    enqueue,
    failed,
    job,
    process,
    row_key,
)

pytestmark = pytest.mark.redis

#: A value for each path parameter, so that every route can be requested.
SAMPLE = {"{name:path}/": "default/", "{name}": "default", "{key:path}": "1700000000.5-abc",
          "{key}": "1700000000.5-abc",
          "{action}": "retry", "{name:path}": "app.jobs.Report",
          "{name:anything}/": "default/", "{name:anything}": "app.jobs.Report"}
#: Routes reachable without logging in, and why.
PUBLIC = {
    ("/login", "GET"),  # the login form
    ("/login", "POST"),  # checking the password
    ("/logout", "POST"),  # only ever forgets a session
}


def route_table(app: Starlette) -> list[tuple[str, str]]:
    """Every (path, method) the router serves, path parameters filled in."""
    found = []
    for route in app.routes:
        if isinstance(route, Mount):
            found.append((route.path + "/app.css", "GET"))
            continue
        assert isinstance(route, Route)
        path = route.path
        for placeholder, value in SAMPLE.items():
            path = path.replace(placeholder, value)
        assert "{" not in path, f"no sample value for a parameter of {route.path}"
        found += [(path, method) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_every_route_but_login_needs_a_login(app: Starlette, anon: Client,
                                             r: redis.Redis) -> None:
    enqueue(r, "default", job("a" * 24))
    r.zadd("retry", {failed("b" * 24): 1700000000.5})
    token = anon.token()  # a valid CSRF token of an anonymous session: still no entry
    routes = route_table(app)
    assert len(routes) >= 20
    for path, method in routes:
        if (path, method) in PUBLIC or path.startswith("/static/"):
            continue
        if method == "GET":
            page = anon.get(path, headers=HTML, follow_redirects=False)
            assert page.status_code == 303, path
            assert page.headers["location"].startswith("/login?next="), path
            assert anon.get(path, follow_redirects=False).status_code == 401, path
        else:
            answer = anon.post(path, data={"csrf": token, "action": "delete", "key": "x"},
                               headers=SAME_ORIGIN, follow_redirects=False)
            assert answer.status_code == 401, f"{method} {path}"
    assert r.llen("queue:default") == 1 and r.zcard("retry") == 1  # nothing was acted on
    assert set(routes) >= PUBLIC  # the exceptions above are real routes, none stale


def test_static_files_are_ours_and_nothing_else(anon: Client) -> None:
    css = anon.get("/static/app.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert anon.get("/static/dashboard.js").status_code == 200
    for path in ("/static/../templates/base.html", "/static/%2e%2e/app.py",
                 "/static/..%2fapp.py", "/static/nope.js"):
        answer = anon.get(path)
        assert answer.status_code in (401, 404), path  # 401: normalised to a private path
        assert "create_app" not in answer.text and "{%" not in answer.text


def test_login_redirects_back_and_never_to_another_site(anon: Client) -> None:
    page = anon.get("/retries?page=2", headers=HTML, follow_redirects=False)
    assert page.headers["location"] == "/login?next=/retries%3Fpage%3D2"
    form = anon.get(page.headers["location"]).text
    assert 'name="next" value="/retries?page=2"' in form
    answer = anon.submit("/login", {"password": PASSWORD, "next": "/retries?page=2"})
    assert answer.status_code == 303 and answer.headers["location"] == "/retries?page=2"
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"):
        answer = anon.submit("/login", {"password": PASSWORD, "next": evil})
        assert answer.headers["location"] == "/", evil


def test_wrong_password_and_tampered_cookie_get_nothing(app: Starlette, anon: Client) -> None:
    answer = anon.login("wrong")
    assert answer.status_code == 401 and "Wrong password" in answer.text
    assert anon.get("/stats").status_code == 401
    assert anon.login().status_code == 303
    assert anon.get("/stats").status_code == 200
    cookie = anon.cookies[COOKIE]
    body, _, signature = cookie.rpartition(".")
    # Each forgery in a client of its own: a jar that kept the anonymous cookie the first
    # answer set would send two. The body changed in its last character, whatever it is
    # (a replace() of one letter changed nothing when the body happened to lack it).
    altered = body[:-1] + ("B" if body[-1] != "B" else "C")
    for forged in (body + "." + signature[::-1], altered + "." + signature):
        with Client(app) as other:
            other.cookies.set(COOKIE, forged)
            assert other.get("/stats").status_code == 401, forged
    with Client(create_app(password=PASSWORD, secret_key="another key " + "y" * 32)) as other:
        other.cookies.set(COOKIE, cookie)  # signed by a different server
        assert other.get("/stats").status_code == 401


def test_session_expires(redis_url: str) -> None:
    app = create_app(password=PASSWORD, secret_key="k" * 32, session_hours=1 / 3600)
    with Client(app) as client:
        client.login()
        assert client.get("/stats").status_code == 200
        time.sleep(1.1)  # the session's lifetime is one second: it must have run out
        assert client.get("/stats").status_code == 401


def test_logout_forgets_the_session(client: Client) -> None:
    assert client.get("/stats").status_code == 200
    assert client.submit("/logout").headers["location"] == "/login"
    assert client.get("/stats").status_code == 401


@pytest.mark.parametrize(("headers", "why"), [
    ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site is 'cross-site'"),
    ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site is 'same-site'"),
    ({"Sec-Fetch-Site": "none"}, "Sec-Fetch-Site is 'none'"),
    ({"Origin": "https://evil.example"},
     "its Origin 'https://evil.example' is not this dashboard's host 'testserver'"),
    ({"Origin": "null"}, 'its Origin is "null", which a browser sends from a privacy-sensitive'
                         " context (a sandboxed frame, a file:// page, a redirect from another"
                         " site); submit the form from the dashboard's own page at"
                         " http://testserver/, not from a saved copy or an embedded frame"),
    ({}, "the request has no Origin header"),  # no current browser posts a form that way
])
def test_cross_site_posts_are_refused(client: Client, r: redis.Redis,
                                      headers: dict[str, str], why: str) -> None:
    enqueue(r, "default", job("a" * 24))
    token = client.token("/")
    answer = client.post("/queues/default/delete", data={"csrf": token}, headers=headers,
                         follow_redirects=False)
    assert answer.status_code == 403
    assert answer.text.startswith(f"Cross-site request refused: {why}")  # says which header
    assert r.llen("queue:default") == 1


def test_origin_of_our_own_host_is_accepted(client: Client, r: redis.Redis) -> None:
    enqueue(r, "default", job("a" * 24))
    answer = client.post("/queues/default/delete", data={"csrf": client.token("/")},
                         headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert answer.status_code == 303
    assert r.llen("queue:default") == 0


@pytest.mark.parametrize("token", [None, "", "forged", "x" * 43])
def test_missing_or_forged_csrf_token_is_refused(client: Client, r: redis.Redis,
                                                 token: str | None) -> None:
    r.zadd("retry", {failed("b" * 24): 1700000000.5})
    data = {"action": "delete", "key": row_key(r, "retry", "b" * 24)}
    if token is not None:
        data["csrf"] = token
    answer = client.post("/retries", data=data, headers=SAME_ORIGIN, follow_redirects=False)
    assert answer.status_code == 403
    assert r.zcard("retry") == 1


def test_token_of_another_session_is_refused(app: Starlette, client: Client,
                                             r: redis.Redis) -> None:
    enqueue(r, "default", job("a" * 24))
    with Client(app) as attacker:
        attacker.login()
        stolen = attacker.token("/")
    answer = client.post("/queues/default/delete", data={"csrf": stolen}, headers=SAME_ORIGIN,
                         follow_redirects=False)
    assert answer.status_code == 403 and r.llen("queue:default") == 1


def test_login_issues_a_fresh_csrf_token(anon: Client) -> None:
    before = anon.token()
    anon.login()
    assert anon.token("/") != before


def test_get_never_changes_anything(client: Client, r: redis.Redis) -> None:
    enqueue(r, "default", job("a" * 24))
    r.zadd("retry", {failed("b" * 24): 1700000000.5})
    process(r, "host:1:abc")
    for path in ("/queues/default/delete", "/retries/all/delete", "/busy?action=stop"):
        assert client.get(path).status_code in (200, 404, 405)
    assert r.llen("queue:default") == 1 and r.zcard("retry") == 1
    assert r.llen("host:1:abc-signals") == 0


def test_headers_on_every_page(client: Client, r: redis.Redis) -> None:
    for path in ("/", "/busy", "/queues", "/retries", "/metrics", "/login", "/stats"):
        answer = client.get(path)
        csp = answer.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([A-Za-z0-9_-]{16,})'", csp)
        assert nonce, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "private, no-store"
        if answer.headers["content-type"].startswith("text/html"):
            scripts = re.findall(r"<script[^>]*>", answer.text)
            assert scripts and all(f'nonce="{nonce.group(1)}"' in s and "src=" in s
                                   for s in scripts), "every script is ours, with the nonce"
            assert "<script>" not in answer.text and " on" + "click=" not in answer.text
    assert client.get("/").headers["content-security-policy"] != \
        client.get("/").headers["content-security-policy"]  # a new nonce per request


def test_session_cookie_flags(anon: Client, redis_url: str) -> None:
    cookie = anon.login().headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http in this test
    with Client(create_app(password=PASSWORD), base_url="https://dash.example") as tls:
        tls_cookie = tls.get("/login").headers["set-cookie"].lower()
        assert "; secure" in tls_cookie


@pytest.mark.parametrize(("path", "check"), [
    ("/?days=1000000", lambda html: html.count("<polyline") == 4),
    ("/?days=-5", lambda html: "<polyline" in html),
    ("/?days=abc", lambda html: "<polyline" in html),
    ("/?poll=0", lambda html: 'data-interval="2"' in html),
    ("/?poll=100000", lambda html: 'data-interval="60"' in html),
    ("/retries?page=-1", lambda html: "Retries" in html),
    ("/retries?page=99999999999999999999999", lambda html: "Retries" in html),
    ("/retries?count=1000000000", lambda html: html.count('name="key"') == 100),
    ("/queues/default?count=0&page=0", lambda html: html.count("Delete this job?") == 1),
    ("/retries?substr=" + "x" * 5000, lambda html: 'value="' + "x" * 100 + '"' in html),
    ("/metrics?period=<script>", lambda html: "last 1 hour" in html),
])
def test_parameters_are_clamped(client: Client, r: redis.Redis, path: str,
                                check: Any) -> None:
    enqueue(r, "default", job("a" * 24))
    r.zadd("retry", {failed(f"{i:024x}"): 1700000000 + i for i in range(150)})
    started = time.perf_counter()
    answer = client.get(path)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200
    assert check(answer.text)
    assert elapsed < 1.0, f"{path} took {elapsed:.2f}s"


def test_history_days_are_clamped_to_180(client: Client, r: redis.Redis) -> None:
    answer = client.get("/?days=1000000").text
    points = re.findall(r'class="line processed" points="([^"]*)"', answer)[0].split()
    assert len(points) == 180


def test_password_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch,
                                               anon: Client) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("sidequest.web.auth.hmac.compare_digest", spy)
    anon.login("nope")
    digests = [c for c in calls if isinstance(c[0], bytes) and len(c[0]) == 32]
    assert digests, "the password check did not go through hmac.compare_digest on digests"
    assert all(PASSWORD.encode() not in a + b for a, b in digests)


def test_no_login_configured_is_an_error(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIDEQUEST_WEB_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="SIDEQUEST_WEB_PASSWORD"):
        create_app()
    monkeypatch.setenv("SIDEQUEST_WEB_PASSWORD", PASSWORD)
    with Client(create_app()) as client:
        assert client.login().status_code == 303


def test_insecure_app_on_loopback_refuses_other_hosts(redis_url: str) -> None:
    app = create_app(insecure=True, allowed_hosts=["127.0.0.1", "localhost", "::1"])
    with Client(app, base_url="http://127.0.0.1:7433") as client:
        assert client.get("/stats").status_code == 200
    with Client(app, base_url="http://[::1]:7433") as client:
        assert client.get("/stats").status_code == 200
    # A page on evil.example whose DNS now points at 127.0.0.1 sends Host: evil.example.
    with Client(app, base_url="http://evil.example:7433") as client:
        assert client.get("/stats").status_code == 400
    with Client(app, base_url="http://127.0.0.1:7433") as client:
        enqueue_check = client.post("/queues/x/delete", headers={"Sec-Fetch-Site": "cross-site"})
        assert enqueue_check.status_code == 403  # CSRF rules hold without a login too


@pytest.mark.parametrize("asynchronous", [False, True])
def test_auth_callable_decides(r: redis.Redis, asynchronous: bool) -> None:
    def staff(request: Any) -> bool:
        return bool(request.headers.get("x-user") == "staff")

    async def staff_async(request: Any) -> bool:
        return staff(request)

    app = create_app(auth=staff_async if asynchronous else staff)
    with Client(app) as client:
        assert client.get("/stats").status_code == 401
        assert client.get("/", headers=HTML, follow_redirects=False).status_code == 401
        assert client.get("/login").status_code == 404  # the app's own login is used
        client.headers["x-user"] = "staff"
        assert client.get("/stats").status_code == 200
        enqueue(r, "x", job("a" * 24))
        page = client.get("/queues")
        assert "Log out" not in page.text
        token = CSRF.search(page.text)
        assert token
        answer = client.post("/queues/x/delete", data={"csrf": token.group(1)},
                             headers=SAME_ORIGIN, follow_redirects=False)
        assert answer.status_code == 303 and r.llen("queue:x") == 0


def staff_only(request: Any) -> bool:
    return False


@pytest.mark.parametrize("ways", [
    {"auth": staff_only, "password": PASSWORD},
    {"auth": staff_only, "insecure": True},
    {"password": PASSWORD, "insecure": True},
    {"auth": staff_only, "password": PASSWORD, "insecure": True},
])
def test_more_than_one_way_to_log_in_is_refused(redis_url: str, ways: dict[str, Any]) -> None:
    """One would be ignored without a word: a password beside auth= left a login page that
    answered 404."""
    with pytest.raises(ConfigError) as refused:
        create_app(**ways)
    message = str(refused.value)
    named = [f"{way}=True" if way == "insecure" else f"{way}=" for way in ways]
    assert f"create_app() was given {' and '.join(named)}" in message
    advice = message.split("pass only one: ")[1].split("; ")  # each one, with what it is for
    assert [part.split(" ")[0] for part in advice] == named


def test_the_password_variable_beside_auth_is_ignored_out_loud(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The variable may be set for a `sidequest web` on the same host: not an error."""
    monkeypatch.setenv("SIDEQUEST_WEB_PASSWORD", PASSWORD)
    with Client(create_app(auth=lambda request: True)) as client:
        assert client.get("/stats").status_code == 200
        assert client.get("/login").status_code == 404
    assert "SIDEQUEST_WEB_PASSWORD is set but ignored here" in caplog.text
    # Beside insecure=True (Django's mount passes it) the variable wins: a login page.
    assert create_app(insecure=True).state.sidequest.auth.has_login_page


def test_auth_callable_with_login_url_redirects_browsers(redis_url: str) -> None:
    app = create_app(auth=lambda request: False, login_url="/accounts/login?next=/sidequest/")
    with Client(app) as client:
        page = client.get("/busy", headers=HTML, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/accounts/login?next=/sidequest/"
        assert client.get("/stats").status_code == 401
    # Without a next of its own, the login page is told where the browser was going.
    for login_url, sent_to in (("/login", "/login?next=/queues%3Fpage%3D2"),
                               ("/auth?via=sq", "/auth?via=sq&next=/queues%3Fpage%3D2")):
        with Client(create_app(auth=lambda request: False, login_url=login_url)) as client:
            page = client.get("/queues?page=2", headers=HTML, follow_redirects=False)
            assert page.headers["location"] == sent_to


def test_a_login_url_with_a_next_of_its_own_is_left_as_it_is(redis_url: str) -> None:
    for login_url, sent_to in (("/auth?next=/home", "/auth?next=/home"),
                               ("/auth?returnnext=x", "/auth?returnnext=x&next=/queues")):
        with Client(create_app(auth=lambda request: False, login_url=login_url)) as client:
            page = client.get("/queues", headers=HTML, follow_redirects=False)
            assert page.headers["location"] == sent_to


def test_a_logged_in_user_auth_refuses_is_not_bounced_back_and_forth(redis_url: str) -> None:
    # A login page that forwards a logged-in user to next (Django's, Flask-Login's) sent a
    # user the check refuses straight back, to be sent to log in again, without end.
    app = create_app(auth=lambda request: False, login_url="/login")
    with Client(app) as client:
        first = client.get("/queues", headers=HTML, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/login?")
        back = client.get("/queues", headers=HTML, follow_redirects=False)  # forwarded back
        assert back.status_code == 403
        assert "you still may not see this dashboard: log in as a user who may, at /login" \
            in back.text
        # A later visit is sent to log in again (the user may have switched accounts).
        assert client.get("/queues", headers=HTML, follow_redirects=False).status_code == 303


def test_a_browser_back_long_after_the_login_page_is_sent_there_again(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(auth=lambda request: False, login_url="/login")
    with Client(app) as client:
        assert client.get("/queues", headers=HTML, follow_redirects=False).status_code == 303
        later = time.time() + 60
        monkeypatch.setattr(time, "time", lambda: later)
        assert client.get("/queues", headers=HTML, follow_redirects=False).status_code == 303


def test_auth_raising_permission_error_refuses_at_once(redis_url: str) -> None:
    def staff_only(request: Any) -> bool:
        raise PermissionError("Staff only: ask an admin for access.")

    with Client(create_app(auth=staff_only, login_url="/login")) as client:
        for headers in (HTML, {}):
            page = client.get("/queues", headers=headers, follow_redirects=False)
            assert page.status_code == 403
            assert page.text == "Staff only: ask an admin for access."


def test_an_os_permission_error_in_auth_is_an_error_not_a_refusal(redis_url: str) -> None:
    # The check could not read its session file: a 500 (logged), not a 403 showing the path.
    def unreadable_session(request: Any) -> bool:
        raise PermissionError(13, "Permission denied", "/srv/app/sessions/2029ab77")

    with Client(create_app(auth=unreadable_session), raise_server_exceptions=False) as client:
        page = client.get("/queues", follow_redirects=False)
        assert page.status_code == 500 and "/srv/app" not in page.text


@pytest.mark.parametrize("target", ["/admin/jobs/../../accounts/login",
                                    "/admin/jobs/%2e%2e/%2E%2E/accounts", "/admin/jobs/./x/.."])
def test_after_login_a_dot_segment_never_leaves_the_dashboard(redis_url: str,
                                                             target: str) -> None:
    outer = Starlette(routes=[Mount("/admin/jobs", create_app(password=PASSWORD))])
    with Client(outer) as client:
        token = CSRF.search(client.get("/admin/jobs/login").text)
        assert token
        answer = client.post("/admin/jobs/login", headers=SAME_ORIGIN, follow_redirects=False,
                             data={"csrf": token.group(1), "password": PASSWORD,
                                   "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/jobs/"


def test_mounted_under_a_prefix(redis_url: str, r: redis.Redis) -> None:
    enqueue(r, "we/ird", job("a" * 24, queue="we/ird"))
    outer = Starlette(routes=[Mount("/admin/jobs", create_app(password=PASSWORD))])
    with Client(outer) as client:
        page = client.get("/admin/jobs/queues", headers=HTML, follow_redirects=False)
        assert page.headers["location"] == "/admin/jobs/login?next=/admin/jobs/queues"
        login = client.get("/admin/jobs/login")
        assert 'action="/admin/jobs/login"' in login.text
        assert 'href="/admin/jobs/static/app.css' in login.text
        token = CSRF.search(login.text)
        assert token
        answer = client.post("/admin/jobs/login", headers=SAME_ORIGIN, follow_redirects=False,
                             data={"csrf": token.group(1), "password": PASSWORD,
                                   "next": "/admin/jobs/queues"})
        assert answer.headers["location"] == "/admin/jobs/queues"
        sandboxed = client.post("/admin/jobs/logout", headers={"Origin": "null"})
        assert sandboxed.status_code == 403
        assert "the dashboard's own page at http://testserver/admin/jobs/," in sandboxed.text
        assert "path=/admin/jobs" in answer.headers["set-cookie"].lower()
        queues = client.get("/admin/jobs/queues").text
        assert 'href="/admin/jobs/queues/we/ird"' in queues  # the route takes the slash
        assert client.get("/admin/jobs/queues/we/ird").status_code == 200
        assert client.get("/admin/jobs/static/app.css").status_code == 200


@pytest.mark.parametrize("secret", [None, "one-secret-for-every-process-" + "x" * 8])
def test_a_form_from_another_process_of_the_dashboard_says_what_to_set(
        redis_url: str, monkeypatch: pytest.MonkeyPatch, secret: str | None) -> None:
    """Two processes of one dashboard (uvicorn --workers 2): without a secret each signs
    with a random key of its own, so a login page served by one is refused by the other,
    and "reload the page" alone did not help."""
    monkeypatch.delenv("SIDEQUEST_WEB_SECRET", raising=False)
    first, second = (create_app(password=PASSWORD, secret_key=secret) for _ in range(2))
    with Client(first) as browser:
        token = browser.token()
        cookies = dict(browser.cookies)
    with Client(second, cookies=cookies) as same_browser:
        answer = same_browser.post("/login", data={"csrf": token, "password": PASSWORD},
                                   headers=SAME_ORIGIN, follow_redirects=False)
    if secret is None:
        assert answer.status_code == 403
        assert "SIDEQUEST_WEB_SECRET, or secret_key=" in answer.text, answer.text
    else:
        assert answer.status_code == 303, answer.text
