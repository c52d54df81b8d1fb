"""The dashboard under the project's URL (``include("sidequest.contrib.django.urls")``),
behind Django's staff login."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("events")


@pytest.fixture
def users(project: object) -> dict[str, object]:
    from django.contrib.auth.models import User

    User.objects.filter(username__in=["ops", "customer"]).delete()
    # No passwords: force_login needs none, and hashing one is slow.
    return {"staff": User.objects.create_user("ops", is_staff=True),
            "customer": User.objects.create_user("customer")}


#: What a browser sends when it follows a link.
NAVIGATION = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8",
              "HTTP_SEC_FETCH_MODE": "navigate"}


def test_anonymous_visitors_go_to_the_login_url(users: dict[str, object]) -> None:
    from django.test import Client

    response = Client().get("/ops/sidequest/queues?x=1", **NAVIGATION)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/ops/sidequest/queues%3Fx%3D1"


@pytest.mark.parametrize("headers", [
    {"HTTP_ACCEPT": "application/json"},  # the live graph's poll
    {"HTTP_ACCEPT": "text/html", "HTTP_SEC_FETCH_MODE": "cors"},  # any fetch()
    {"HTTP_ACCEPT": "text/html", "HTTP_X_REQUESTED_WITH": "XMLHttpRequest"},
    {},  # curl, a monitor
])
def test_a_script_gets_401_not_the_login_page(users: dict[str, object],
                                              headers: dict[str, str]) -> None:
    """The live graph's poll followed the redirect to the login page's HTML, could not read
    it, and said the dashboard was not answering; a 401 makes it say to log in again."""
    from django.test import Client

    response = Client().get("/ops/sidequest/stats", **headers)
    assert response.status_code == 401
    assert response.content == b"Log in first"  # as the standalone dashboard answers


def test_staff_get_the_live_graphs_figures(users: dict[str, object]) -> None:
    from django.test import Client

    client = Client()
    client.force_login(users["staff"])
    response = client.get("/ops/sidequest/stats", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and "processed" in response.json()["sidequest"]


def test_a_bad_setting_refuses_the_dashboard(users: dict[str, object],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad SIDEQUEST (kept by the app at startup): the dashboard would show the default
    Redis as the project's."""
    from django.test import Client

    from sidequest.contrib.django import conf, views
    from sidequest.errors import ConfigError

    monkeypatch.setattr(views, "_app", None)
    monkeypatch.setattr(conf, "problem", ConfigError("settings.SIDEQUEST: unknown setting"
                                                     " 'redis_ulr'; did you mean 'redis_url'?"))
    client = Client(raise_request_exception=True)
    client.force_login(users["staff"])
    with pytest.raises(ConfigError, match="did you mean 'redis_url'"):
        client.get("/ops/sidequest/queues", **NAVIGATION)


def test_non_staff_users_are_refused(users: dict[str, object]) -> None:
    from django.test import Client

    client = Client()
    client.force_login(users["customer"])
    response = client.get("/ops/sidequest/")
    assert response.status_code == 403
    assert response.content == b"The Sidequest dashboard is for staff users."


@pytest.fixture
def permission_users(users: dict[str, object]) -> dict[str, object]:
    """The staff user, a user (not staff) granted auth.change_user, and a superuser (not
    staff either: has_perm alone decides)."""
    from django.contrib.auth.models import Permission, User

    User.objects.filter(username__in=["granted", "root"]).delete()
    granted = User.objects.create_user("granted")
    granted.user_permissions.add(Permission.objects.get(content_type__app_label="auth",
                                                        codename="change_user"))
    return {**users, "granted": granted,
            "root": User.objects.create_user("root", is_superuser=True)}


def status_with(permission: object, user: object) -> tuple[int, bytes]:
    from django.conf import settings
    from django.test import Client, override_settings

    client = Client()
    client.force_login(user)
    extra = {} if permission is None else {"dashboard_permission": permission}
    with override_settings(SIDEQUEST={**settings.SIDEQUEST, **extra}):
        page = client.get("/ops/sidequest/stats", HTTP_ACCEPT="application/json")
    return page.status_code, page.content


def test_a_dashboard_permission_is_required_instead_of_staff(
        permission_users: dict[str, object]) -> None:
    # Before: every staff user saw the dashboard, whatever SIDEQUEST['dashboard_permission'].
    refused = status_with("auth.change_user", permission_users["staff"])
    assert refused == (403, b"The Sidequest dashboard needs the permission 'auth.change_user'"
                            b" (SIDEQUEST['dashboard_permission']); ask an administrator to"
                            b" grant it.")
    assert status_with("auth.change_user", permission_users["granted"])[0] == 200
    assert status_with("auth.change_user", permission_users["root"])[0] == 200
    assert status_with("auth.change_user", permission_users["customer"])[0] == 403
    # Not set: the staff rule, whatever permissions a user has.
    assert status_with(None, permission_users["staff"])[0] == 200
    assert status_with(None, permission_users["granted"]) == (
        403, b"The Sidequest dashboard is for staff users.")
    # A malformed one (has_perm would refuse everyone but superusers, and say nothing).
    from sidequest.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'app_label\.codename'"):
        status_with("change_user", permission_users["staff"])


def test_staff_see_the_dashboard_under_the_project_url(users: dict[str, object]) -> None:
    from django.test import Client
    from shop.jobs import RecordOrder

    RecordOrder.set(queue="reports").perform_async(1)
    client = Client()
    client.force_login(users["staff"])
    page = client.get("/ops/sidequest/queues", HTTP_ACCEPT="text/html")
    assert page.status_code == 200, page.content[:500]
    html = page.content.decode()
    assert "reports" in html  # the queue just pushed to, read from Redis
    assert 'href="/ops/sidequest/' in html  # links stay under the mount point
    assert page.cookies  # the dashboard's own session cookie (its CSRF token lives there)
    assert 'href="/ops/sidequest/static/app.css' in html
    assert client.get("/ops/sidequest/static/app.css").status_code == 200


def test_redis_down_the_page_names_the_sidequest_setting(users: dict[str, object],
                                                         redis_down: str) -> None:
    from django.test import Client

    client = Client()
    client.force_login(users["staff"])
    page = client.get("/ops/sidequest/queues", HTTP_ACCEPT="text/html")
    assert page.status_code == 503
    text = " ".join(page.content.decode().split())
    assert f"could not reach Redis at <code>{redis_down}</code>" in text
    # SIDEQUEST wins over the variables: naming only them would send the user astray.
    assert ('set it with <code>settings.SIDEQUEST["redis_url"]</code>, which wins over the'
            " environment variables <code>SIDEQUEST_REDIS_URL</code> and <code>REDIS_URL</code>)"
            ) in text


def test_behind_a_tls_proxy_the_dashboards_cookie_is_secure(users: dict[str, object]) -> None:
    # Django knows the request came over https from SECURE_PROXY_SSL_HEADER; the server's
    # own environ says http, and the dashboard must go by Django's word.
    from django.test import Client, override_settings

    def cookie(**headers: str) -> Any:
        client = Client()  # a new one each time: no cookie yet, so the dashboard sets one
        client.force_login(users["staff"])
        page = client.get("/ops/sidequest/queues", HTTP_ACCEPT="text/html", **headers)
        assert page.status_code == 200
        return page.cookies["sidequest_session"]

    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        assert cookie(HTTP_X_FORWARDED_PROTO="https")["secure"]
        assert not cookie()["secure"]


def _delete_form(users: dict[str, object]) -> tuple[Any, Any]:
    """A staff client, and the Delete form (its action and CSRF token) of a queue it loaded."""
    import re

    from django.test import Client
    from shop.jobs import RecordOrder

    RecordOrder.set(queue="doomed").perform_async(1)
    client = Client()
    client.force_login(users["staff"])
    html = client.get("/ops/sidequest/queues", HTTP_ACCEPT="text/html").content.decode()
    form = re.search(r'action="(/ops/sidequest/queues/doomed/delete)".*?name="csrf" '
                     r'value="([^"]+)"', html, re.DOTALL)
    assert form, "no Delete form for the queue"
    return client, form


def test_a_dashboard_form_works_through_django(users: dict[str, object]) -> None:
    """A POST (the queue's Delete button) passes Django's middleware (the dashboard checks
    its own CSRF token) and reaches Redis."""
    from urllib.parse import urlencode

    import redis
    from django.conf import settings

    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    client, form = _delete_form(users)

    def submit(token: str) -> Any:  # as a browser posts a form: url-encoded, with Origin
        return client.post(form.group(1), urlencode({"csrf": token}),
                           content_type="application/x-www-form-urlencoded",
                           HTTP_ORIGIN="http://testserver")

    refused = submit("wrong")
    assert refused.status_code == 403 and r.llen("queue:doomed") == 1
    done = submit(form.group(2))
    assert done.status_code in (302, 303), done.content[:300]
    assert r.llen("queue:doomed") == 0


def test_served_by_django_under_asgi_too(users: dict[str, object]) -> None:
    """Under an ASGI server the request carries no WSGI keys; the dashboard still answers."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    client = AsyncClient()
    async_to_sync(client.aforce_login)(users["staff"])
    page = async_to_sync(client.get)("/ops/sidequest/queues", headers={"accept": "text/html"})
    assert page.status_code == 200 and b'href="/ops/sidequest/static/app.css' in page.content


@pytest.fixture
def scrape_token(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A token in the environment, and a dashboard made after it was set (the view makes
    its app, and reads the token, on first use)."""
    from sidequest.contrib.django import views

    token = "django-scrape-token-" + "z" * 12
    monkeypatch.setenv("SIDEQUEST_PROMETHEUS_TOKEN", token)
    monkeypatch.setattr(views, "_app", None)
    monkeypatch.setattr(views, "_token", None)  # both put back for the next test
    return token


def test_a_scraper_with_the_token_reads_prometheus_only(users: dict[str, object],
                                                       scrape_token: str) -> None:
    """A scraper cannot log in to Django: the token opens the metrics page, and nothing
    else; without it the page is staff-only like the rest."""
    from django.test import Client

    bearer = {"HTTP_AUTHORIZATION": f"Bearer {scrape_token}"}
    metrics = Client().get("/ops/sidequest/prometheus", **bearer)
    assert metrics.status_code == 200 and b"sidequest_busy" in metrics.content
    # A scraper is no browser: 401, not the login page.
    assert Client().get("/ops/sidequest/prometheus").status_code == 401
    wrong = Client().get("/ops/sidequest/prometheus", HTTP_AUTHORIZATION="Bearer wrong")
    assert wrong.status_code == 401
    assert Client().get("/ops/sidequest/queues", **bearer).status_code == 401
    assert Client().post("/ops/sidequest/prometheus", **bearer).status_code == 401


def test_a_form_from_one_process_posts_to_another(users: dict[str, object],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process serving the site signs the dashboard's sessions alike (from
    SECRET_KEY): a form loaded from one is accepted by another. A second dashboard app stands
    for the other process; each used to sign with a random key of its own."""
    from urllib.parse import urlencode

    import redis
    from django.conf import settings

    from sidequest.contrib.django import views

    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    client, form = _delete_form(users)
    monkeypatch.setattr(views, "_app", None)  # the next request is served by another app
    done = client.post(form.group(1), urlencode({"csrf": form.group(2)}),
                       content_type="application/x-www-form-urlencoded",
                       HTTP_ORIGIN="http://testserver")
    assert done.status_code in (302, 303), done.content[:300]
    assert r.llen("queue:doomed") == 0


def test_mounted_without_a_trailing_slash_its_links_work(users: dict[str, object]) -> None:
    """path("sidequest", include(...)): /ops-bare/sidequest/queues gave a bare Not Found."""
    from django.test import Client

    client = Client()
    client.force_login(users["staff"])
    page = client.get("/ops-bare/sidequest/queues", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b'href="/ops-bare/sidequest/' in page.content


def test_mounted_without_the_app_says_to_install_it(users: dict[str, object],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the app, SIDEQUEST is never read and the dashboard showed the default Redis
    (or said it was unreachable) with no word of why."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.test import Client
    from django.test.utils import override_settings

    from sidequest.contrib.django import views

    monkeypatch.setattr(views, "_app", None)
    client = Client(raise_request_exception=True)
    client.force_login(users["staff"])
    apps = [app for app in settings.INSTALLED_APPS if app != "sidequest.contrib.django"]
    with override_settings(INSTALLED_APPS=apps), pytest.raises(
            ImproperlyConfigured, match=r"'sidequest\.contrib\.django' is not in INSTALLED_APPS"):
        client.get("/ops/sidequest/queues")


def test_a_scraper_reads_prometheus_under_a_mount_without_a_trailing_slash(
        users: dict[str, object], scrape_token: str) -> None:
    from django.test import Client

    bearer = {"HTTP_AUTHORIZATION": f"Bearer {scrape_token}"}
    metrics = Client().get("/ops-bare/sidequest/prometheus", **bearer)
    assert metrics.status_code == 200 and b"sidequest_busy" in metrics.content


def test_a_queue_named_with_a_line_break_opens(users: dict[str, object]) -> None:
    # The URL pattern's "." stopped at the line break: a 404 from Django, though the
    # dashboard itself serves the queue (a Ruby client accepts the name).
    from django.urls import resolve

    assert resolve("/ops/sidequest/queues/a\nb").kwargs == {"path": "queues/a\nb"}
