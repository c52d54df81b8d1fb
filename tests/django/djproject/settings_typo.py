from djproject.settings import *  # noqa: F403

SIDEQUEST = {"concurency": 4}
