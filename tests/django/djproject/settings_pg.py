"""The test project on PostgreSQL (tests/django/test_postgres.py starts a private server and
sets SHOP_PG_PORT): persistent connections, health-checked before a job reuses them."""

import os

from djproject.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("SHOP_PG_PORT", "5432"),
        "NAME": "postgres",
        "USER": "postgres",
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    }
}
