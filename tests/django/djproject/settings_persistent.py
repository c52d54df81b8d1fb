from djproject.settings import *  # noqa: F403

# Persistent connections without health checks: the system check warns (sidequest.W002).
DATABASES = {"default": {**DATABASES["default"], "CONN_MAX_AGE": None}}  # noqa: F405
