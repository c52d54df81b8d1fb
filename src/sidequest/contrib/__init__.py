"""Integrations with other libraries, each behind its own extra; none is imported by
``import sidequest``."""
