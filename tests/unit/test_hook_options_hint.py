"""Hooks given as options (``@job(retry=3, retry_in=...)``, as the migration guides once
suggested) are refused with what to write instead: a Job class defining the hook, which an
``@job`` function cannot have. The guides say so too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidequest import Job, job
from sidequest.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "docs" / "coming-from-celery.md", ROOT / "docs" / "coming-from-rq.md"]


def wait(count: int, exc: BaseException, payload: Any) -> float:
    return 10.0


@pytest.mark.parametrize(("hook", "signature"), [
    ("retry_in", "retry_in(cls, count, exc, payload)"),
    ("retries_exhausted", "retries_exhausted(cls, payload, exc)"),
    ("unique_key", "unique_key("),
])
def test_a_hook_given_to_job_says_to_write_a_job_class(hook: str, signature: str) -> None:
    with pytest.raises(ConfigError) as raised:
        @job(retry=3, **{hook: wait})
        def hooked(n: int) -> None:
            pass
    message = str(raised.value)
    assert "did you mean" not in message
    assert f"{hook} is a hook, not an option" in message
    assert "Job class" in message and signature in message


def test_set_gives_the_same_advice() -> None:
    class HookedSet(Job):
        def perform(self) -> None:
            pass

    with pytest.raises(ConfigError, match=r"retry_in is a hook, not an option.*Job class"):
        HookedSet.set(retry_in=wait)


def test_a_class_that_defines_the_hook_as_a_classmethod_is_fine() -> None:
    class Hooked(Job):
        retry = 3

        def perform(self) -> None:
            pass

        @classmethod
        def retry_in(cls, count: int, exc: BaseException, payload: Any) -> float:
            return 10.0

    assert Hooked.retry_in(1, ValueError(), {}) == 10.0


def test_a_hook_set_to_a_plain_value_on_a_class_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"retry_in is a hook.*@classmethod def retry_in"):
        class Plain(Job):
            retry_in = 30

            def perform(self) -> None:
                pass


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.name)
def test_the_guides_say_custom_delays_need_a_job_class(guide: Path) -> None:
    rows = [line for line in guide.read_text(encoding="utf-8").splitlines()
            if "retry_in" in line]
    assert rows, "the guide no longer mentions retry_in"
    for row in rows:
        assert "Job class" in row and "classmethod" in row, row
