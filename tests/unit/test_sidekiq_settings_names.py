"""Settings named as in Sidekiq, Celery, RQ or Gunicorn get the Sidequest setting they mean,
never a harmful neighbour that difflib finds by spelling (``shutdown_timeout`` is not
``dead_timeout``, which would drop dead jobs within seconds)."""

from __future__ import annotations

import pytest

from sidequest.config import from_mapping
from sidequest.errors import ConfigError


def hint_for(key: str) -> str:
    with pytest.raises(ConfigError) as caught:
        from_mapping({key: 5}, "settings.SIDEQUEST")
    prefix = f"settings.SIDEQUEST: unknown setting {key.replace('-', '_')!r}; "
    message = str(caught.value)
    assert message.startswith(prefix), message
    return message[len(prefix):]


@pytest.mark.parametrize("key", [
    "shutdown_timeout", "graceful_timeout", "shutdown-timeout", "graceful-shutdown-timeout",
    "stop_timeout", "kill_timeout", "drain_timeout", "term_timeout", "SHUTDOWN_TIMEOUT"])
def test_a_shutdown_timeout_is_timeout(key: str) -> None:
    hint = hint_for(key)
    assert hint.startswith("did you mean 'timeout'? It is the seconds a stopping worker waits"
                           " for its running jobs"), hint
    assert "dead_timeout" not in hint


@pytest.mark.parametrize("key", ["job_timeout", "task_time_limit", "soft_time_limit",
                                 "hard_timeout", "time_limit"])
def test_a_jobs_time_limit_is_the_job_option(key: str) -> None:
    hint = hint_for(key)
    assert hint.startswith("a job's time limit is the job option timeout"), hint
    assert "dead_timeout" not in hint


@pytest.mark.parametrize(("key", "meant"), [
    ("threads", "concurrency"), ("max_threads", "concurrency"), ("workers", "processes"),
    ("url", "redis_url"), ("redis_host", "redis_url"), ("concurency", "concurrency"),
    ("queue", "queues"), ("worker_concurrency", "concurrency"),
])
def test_other_names_point_at_the_setting_meant(key: str, meant: str) -> None:
    assert hint_for(key).startswith(f"did you mean {meant!r}?")


@pytest.mark.parametrize(("key", "hint"), [
    ("wait_timeout", "did you mean 'timeout'?"),  # difflib's first guess: dead_timeout
    ("max_jobs", "the settings are listed in"),   # and its only one: dead_max_jobs
])
def test_the_dead_set_settings_are_suggested_only_for_a_name_that_says_dead(
        key: str, hint: str) -> None:
    assert hint_for(key).startswith(hint)


@pytest.mark.parametrize(("key", "meant"), [("dead_timout", "dead_timeout"),
                                            ("dead_jobs", "dead_max_jobs")])
def test_a_misspelt_dead_set_setting_is_still_found(key: str, meant: str) -> None:
    assert hint_for(key) == f"did you mean {meant!r}?"


def test_log_file_is_sidekiqs_logfile() -> None:
    assert hint_for("log_file").startswith("Sidekiq 6 removed it too: the worker logs to")
