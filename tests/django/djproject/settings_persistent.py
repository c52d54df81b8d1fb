from djproject.settings import *  # noqa: F403

# Persistent connections without health checks: the system check warns (sidequest.W002) of
# the PostgreSQL database, not of SQLite's file, which no server restart can break. Nothing
# connects to the PostgreSQL one: `manage.py check` reads the settings only.
DATABASES = {
    "default": {**DATABASES["default"], "CONN_MAX_AGE": None},  # noqa: F405
    "reports": {"ENGINE": "django.db.backends.postgresql", "NAME": "reports",
                "CONN_MAX_AGE": None},
}
