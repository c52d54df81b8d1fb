"""A form posted after the session ended (logged out in another tab, the session gone from
Redis, the dashboard restarted with a new secret): a browser is sent to log in, back to the
form's page, told the action was not done; the action is never done; a script keeps its 401.
"""

from __future__ import annotations

import html
import re
import time
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import redis
from starlette.applications import Starlette
from starlette.routing import Mount

from sidequest import keys
from sidequest.web import create_app
from sidequest.web.security import ACTION_NOT_DONE
from sidequest.web.session import COOKIE
from web_helpers import CSRF, PASSWORD, Client, browser_tab, failed, flash, row_key

pytestmark = pytest.mark.redis

#: What Chromium sends with a form submitted from one of our pages.
FORM_POST = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate",
             "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "document"}
#: A POST path of each kind of form, and the tab page it falls back to without a Referer.
POSTS = {
    "/busy": "/busy",
    "/queues/default/delete": "/queues",
    "/queues/default/delete_job": "/queues",
    "/retries": "/retries",
    "/retries/all/delete": "/retries",
    "/retries/1700000000.5-abc": "/retries",
    "/morgue/1700000000.5-abc": "/morgue",
    "/periodic": "/periodic",
}


def _retry(r: redis.Redis) -> str:
    r.zadd("retry", {failed("b" * 24): time.time() + 3600})
    return row_key(r, "retry", "b" * 24)


def _end_session(app: Starlette, client: Client, r: redis.Redis) -> None:
    """What logging out in another tab does: the session's id leaves Redis."""
    session = app.state.sidequest.signer.loads(client.cookies[COOKIE])
    assert session is not None and session.sid
    assert r.delete(keys.web_session(session.sid)) == 1


def _next_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path.endswith("/login"), location
    return parse_qs(parts.query)["next"][0]


def test_a_form_after_logout_sends_the_browser_to_log_in_and_back(
        app: Starlette, client: Client, r: redis.Redis) -> None:
    key = _retry(r)
    page = client.get("/retries?page=1&substr=ReportError")
    token = CSRF.search(page.text)
    assert token
    _end_session(app, client, r)
    referer = "http://testserver/retries?page=1&substr=ReportError"
    answer = client.post(f"/retries/{quote(key, safe='')}", follow_redirects=False,
                         data={"csrf": token.group(1), "action": "delete"},
                         headers={**FORM_POST, "Referer": referer})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/login?next=" + quote(
        "/retries?page=1&substr=ReportError", safe="/")
    assert r.zcard("retry") == 1  # not done
    login = client.get(answer.headers["location"])
    assert html.unescape(flash(login.text)) == ACTION_NOT_DONE
    assert 'name="next" value="/retries?page=1&amp;substr=ReportError"' in login.text
    back = client.submit("/login", {"password": PASSWORD,
                                    "next": "/retries?page=1&substr=ReportError"})
    assert back.headers["location"] == "/retries?page=1&substr=ReportError"
    assert flash(client.get("/retries").text) == ""  # said once, on the login page


def test_a_form_after_a_restart_with_a_new_secret(redis_url: str, r: redis.Redis) -> None:
    _retry(r)
    with Client(create_app(password=PASSWORD, secret_key="a" * 40)) as before:
        assert before.login().status_code == 303
        token = before.token("/retries")
        cookie = before.cookies[COOKIE]
    with Client(create_app(password=PASSWORD, secret_key="b" * 40)) as after:
        after.cookies.set(COOKIE, cookie)
        answer = after.post("/retries/all/delete", data={"csrf": token},
                            headers={**FORM_POST, "Referer": "http://testserver/retries"},
                            follow_redirects=False)
        assert answer.status_code == 303 and _next_of(answer.headers["location"]) == "/retries"
        assert html.unescape(flash(after.get(answer.headers["location"]).text)) == ACTION_NOT_DONE
    assert r.zcard("retry") == 1


@pytest.mark.parametrize(("path", "tab"), POSTS.items())
def test_without_a_referer_the_next_page_is_the_forms_tab(anon: Client, r: redis.Redis,
                                                          path: str, tab: str) -> None:
    key = _retry(r)
    r.sadd("queues", "default")
    r.lpush("queue:default", failed("c" * 24))
    answer = anon.post(path, data={"csrf": anon.token(), "action": "delete", "key": key,
                                   "name": "x", "jid": "c" * 24},
                       headers=FORM_POST, follow_redirects=False)
    assert answer.status_code == 303 and _next_of(answer.headers["location"]) == tab
    assert r.zcard("retry") == 1 and r.llen("queue:default") == 1


@pytest.mark.parametrize("headers", [
    {"Accept": "*/*", "Sec-Fetch-Site": "same-origin"},  # curl, a script, fetch's default
    {**FORM_POST, "Sec-Fetch-Mode": "cors"},  # fetch() asking for HTML
    {**FORM_POST, "Sec-Fetch-Mode": "same-origin"},
    {"Accept": "text/html", "Origin": "http://testserver", "X-Requested-With": "XMLHttpRequest"},
    {**FORM_POST, "Sec-Fetch-Site": "cross-site"},  # another site's form earns no login page
    {"Accept": "text/html", "Origin": "https://evil.example"},
])
def test_a_script_or_another_site_still_gets_401(anon: Client, r: redis.Redis,
                                                 headers: dict[str, str]) -> None:
    _retry(r)
    answer = anon.post("/retries/all/delete", data={"csrf": anon.token()}, headers=headers,
                       follow_redirects=False)
    assert answer.status_code == 401 and answer.text == "Log in first"
    assert flash(anon.get("/login").text) == ""
    assert r.zcard("retry") == 1


def test_a_script_asking_for_html_gets_401_on_a_get_too(anon: Client) -> None:
    fetched = anon.get("/retries", headers={**FORM_POST, "Sec-Fetch-Mode": "cors"},
                       follow_redirects=False)
    assert fetched.status_code == 401
    browsed = anon.get("/retries", headers=FORM_POST, follow_redirects=False)
    assert browsed.status_code == 303 and _next_of(browsed.headers["location"]) == "/retries"
    assert flash(anon.get(browsed.headers["location"]).text) == ""  # nothing was refused


@pytest.mark.parametrize(("referer", "expected"), [
    ("http://testserver/sq/periodic?x=1", "/sq/periodic?x=1"),
    ("http://evil.example/sq/periodic", "/sq/periodic"),  # another origin: not taken
    ("http://testserver/elsewhere/page", "/sq/periodic"),  # outside the dashboard
    ("http://testserver/sq/../admin", "/sq/periodic"),  # safe_next's dot-segment rule
    ("http://testserver/sq/%2e%2e/admin", "/sq/periodic"),
    ("http://testserver/sq/login?next=/sq/busy", "/sq/periodic"),  # not back to log in again
    ("http://testserver/sq/shards/eu/queues/a%3Fb?page=2", "/sq/shards/eu/queues/a%3Fb?page=2"),
])
def test_the_referer_is_taken_only_when_it_is_a_page_of_the_dashboard(
        redis_url: str, referer: str, expected: str) -> None:
    outer = Starlette(routes=[Mount("/sq", create_app(password=PASSWORD))])
    with Client(outer) as client:
        token = client.token("/sq/login")
        answer = client.post("/sq/periodic", data={"csrf": token, "action": "pause",
                                                   "name": "x"},
                             headers={**FORM_POST, "Referer": referer},
                             follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/sq/login?next=")
        target = _next_of(answer.headers["location"])
        assert target == expected
        # The login page keeps it as the place to go back to.
        login = client.get(answer.headers["location"]).text
        assert f'name="next" value="{html.escape(expected)}"' in login


def test_a_form_on_a_shard_falls_back_to_that_shards_tab(anon: Client) -> None:
    answer = anon.post("/shards/eu/queues/default/delete", data={"csrf": anon.token()},
                       headers=FORM_POST, follow_redirects=False)
    assert answer.status_code == 303
    assert _next_of(answer.headers["location"]) == "/shards/eu/queues"


def test_in_a_browser_a_delete_after_logout_is_not_done_and_can_be_repeated(
        redis_url: str, r: redis.Redis) -> None:
    key = _retry(r)
    app = create_app(password=PASSWORD, secret_key="k" * 40)
    with browser_tab(app, viewport={"width": 1280, "height": 800}) as tab:
        tab.on("dialog", lambda dialog: dialog.accept())
        tab.goto("/retries?page=1")
        tab.fill("#password", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url("**/retries?page=1")
        other = tab.context.new_page()  # logging out in another tab
        other.goto("/retries")
        other.click("header .logout button")
        other.wait_for_url("**/login")
        other.close()
        row = tab.locator("#jobs tbody tr").first
        row.get_by_role("button", name="Delete").click()
        tab.wait_for_url(re.compile(r"/login\?next="))
        assert tab.inner_text(".flash") == ACTION_NOT_DONE
        assert r.zcard("retry") == 1, "the delete was done without a session"
        tab.fill("#password", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url("**/retries?page=1")
        tab.locator("#jobs tbody tr").first.get_by_role("button", name="Delete").click()
        tab.wait_for_selector(".flash")
        assert "Deleted" in tab.inner_text(".flash")
    assert r.zcard("retry") == 0, key



def test_with_the_apps_own_login_page_the_form_goes_there(redis_url: str,
                                                          r: redis.Redis) -> None:
    _retry(r)
    app = create_app(auth=lambda request: False, login_url="/accounts/login")
    with Client(app) as client:
        answer = client.post("/retries/all/delete", data={"csrf": "x"},
                             headers={**FORM_POST, "Referer": "http://testserver/retries?page=2"},
                             follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/accounts/login?next=/retries%3Fpage%3D2"
        # Said on the dashboard's first page after that login.
        session = app.state.sidequest.signer.loads(client.cookies[COOKIE])
        assert session is not None and session.flash == ACTION_NOT_DONE
    assert r.zcard("retry") == 1


def test_a_form_from_an_earlier_login_goes_back_to_its_page(
        client: Client, r: redis.Redis) -> None:
    # Logged out and in again in another tab: the form's token is the old session's. A bare
    # 403 "reload the page" was a dead end: reloading sent the POST again.
    from sidequest.web.security import STALE_FORM

    _retry(r)
    old_token = client.token("/retries")
    assert client.submit("/logout").status_code == 303
    assert client.login().status_code == 303  # the other tab's new login
    answer = client.post("/retries/all/delete", data={"csrf": old_token}, follow_redirects=False,
                         headers={**FORM_POST, "Referer": "http://testserver/retries?page=1"})
    assert answer.status_code == 303 and answer.headers["location"] == "/retries?page=1"
    assert html.unescape(flash(client.get("/retries").text)) == STALE_FORM
    assert r.zcard("retry") == 1  # not done
    script = client.post("/retries/all/delete", data={"csrf": old_token},
                         follow_redirects=False)
    assert script.status_code == 403  # a script keeps its plain refusal


def test_two_dashboards_on_one_host_name_keep_their_own_sessions(
        redis_url: str, r: redis.Redis) -> None:
    # One at / (sidequest web), one mounted at /sidequest on another port: the browser sends
    # both cookies of that name to the mounted one, its own first. Only the last was read,
    # the other dashboard's, which did not verify: every request began a new session.
    _retry(r)
    with Client(create_app(password=PASSWORD, secret_key="a" * 40)) as other:
        assert other.login().status_code == 303
        foreign = other.cookies[COOKIE]
    with Client(create_app(password=PASSWORD, secret_key="b" * 40)) as mine:
        assert mine.login().status_code == 303
        own = mine.cookies[COOKIE]
        mine.cookies.clear()
        both = {"cookie": f"{COOKIE}={own}; {COOKIE}={foreign}"}
        page = mine.get("/retries", headers=both, follow_redirects=False)
        assert page.status_code == 200, page.headers.get("location")
        token = CSRF.search(page.text)
        assert token
        answer = mine.post("/retries/all/delete", data={"csrf": token.group(1)},
                           headers={**both, **FORM_POST, "Referer": "http://testserver/retries"},
                           follow_redirects=False)
        assert answer.status_code == 303 and r.zcard("retry") == 0, answer.text
