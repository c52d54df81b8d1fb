from djproject.settings import *  # noqa: F403

# A worker under DEBUG: Django logs every query of a connection (tests/django/test_debug.py).
DEBUG = True
