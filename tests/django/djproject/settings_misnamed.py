from djproject.settings import *  # noqa: F403

# SIDEQUEST under a Sidekiq user's name: ignored by Django, named by the check (W003).
SIDEKIQ = SIDEQUEST  # noqa: F405
del SIDEQUEST  # noqa: F821
