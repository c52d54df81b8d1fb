"""Environment variables: a name close to one Sidequest reads is pointed out, not ignored."""

from __future__ import annotations

import pytest

from sidequest import environ
from sidequest.cli import main


def test_a_misspelt_variable_is_named_with_the_one_meant() -> None:
    warnings = environ.near_misses({"SIDEQUEST_REDIS_ULR": "redis://cache:6379",
                                    "sidequest_web_password": "x", "SIDEQUEST_SHARD": "a=b"})
    assert warnings == [
        "$SIDEQUEST_REDIS_ULR is set but Sidequest does not read it; did you mean"
        " $SIDEQUEST_REDIS_URL?",
        "$SIDEQUEST_SHARD is set but Sidequest does not read it; did you mean"
        " $SIDEQUEST_SHARDS?",
        "$sidequest_web_password is set but Sidequest does not read it; did you mean"
        " $SIDEQUEST_WEB_PASSWORD?",
    ]


def test_known_names_and_an_apps_own_settings_pass_without_a_word() -> None:
    env = {name: "x" for name in environ.KNOWN}
    env.update({"REDIS_URL": "redis://h", "SIDEQUEST_BILLING_BATCH_SIZE": "50", "PATH": "/bin"})
    assert environ.near_misses(env) == []


def test_the_command_warns_before_it_runs(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIDEQUEST_REDIS_ULR", "redis://cache:6379")
    with pytest.raises(SystemExit):
        main(["stats", "--help"])
    assert ("sidequest: warning: $SIDEQUEST_REDIS_ULR is set but Sidequest does not read it;"
            " did you mean $SIDEQUEST_REDIS_URL?") in capsys.readouterr().err
