"""Settings of the Django project that tests/django runs: SQLite, the sidequest app, the
Sidequest task backend; the Redis URL and the database file come from the environment
(tests/django/conftest.py sets them)."""

import os

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
ROOT_URLCONF = "djproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/accounts/login/"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "sidequest.contrib.django",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", "shop.sqlite3"),
        # The worker and the tests write the same file: wait for each other's locks.
        "OPTIONS": {"timeout": 30},
    },
    # A second database, for enqueue_on_commit inside its transactions (test_on_commit.py).
    "other": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", "shop.sqlite3") + ".other",
    },
}
SIDEQUEST = {
    "redis_url": os.environ.get("SHOP_REDIS_URL", "redis://localhost:6379/0"),
    "concurrency": 2,
    # Every queue TASKS routes to (its QUEUES, its PRIORITY_QUEUES), or the system check
    # sidequest.W004 says a worker on these queues never runs some tasks.
    "queues": ["critical", "default", "emails"],
}
TASKS = {
    "default": {
        "BACKEND": "sidequest.contrib.django.SidequestBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"PRIORITY_QUEUES": [(50, "critical")], "RETRY": 0},
    }
}
