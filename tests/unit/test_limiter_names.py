"""One name, one limiter: a name made again in the process with another kind or other limits
is refused when it is made, with an error naming both definitions and where they were made;
the same limiter made again (per call, in two modules, with another wait_timeout) is fine.
Nothing touches Redis."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

from sidequest import limiter


def test_another_kind_under_a_taken_name_is_refused_naming_both() -> None:
    held = limiter.concurrent("mix", 1)
    with pytest.raises(limiter.LimiterConflict) as raised:
        limiter.bucket("mix", 1, "minute")
    text = str(raised.value)
    assert "limiter 'mix' is defined twice" in text
    assert "limiter.concurrent('mix', 1, lock_timeout=30)" in text
    assert "limiter.bucket('mix', 1, 60)" in text
    assert text.count(f"{__file__}:") == 2, "where each was made"
    assert "give each its own name" in text
    with pytest.raises(limiter.LimiterConflict, match=r"limiter\.window\('mix', 1, 60\)"):
        limiter.window("mix", 1, "minute")
    # Per-call limiters are forgotten with their last use: a million per-user names cost the
    # process no memory, and a name is free again once no code has its limiter.
    del held, raised
    gc.collect()
    assert limiter.window("mix", 1, "minute").name == "mix"


@pytest.mark.parametrize(("first", "second"), [
    (lambda: limiter.bucket("shared2", 2, "minute"),
     lambda: limiter.bucket("shared2", 100, "minute")),
    (lambda: limiter.window("shared2", 5, "second"),
     lambda: limiter.window("shared2", 5, "minute")),
    (lambda: limiter.concurrent("shared2", 5, lock_timeout=30),
     lambda: limiter.concurrent("shared2", 5, lock_timeout=10)),
])
def test_other_limits_under_a_taken_name_are_refused(
    first: Callable[[], limiter.Limiter], second: Callable[[], limiter.Limiter]
) -> None:
    kept = first()
    with pytest.raises(limiter.LimiterConflict, match="'shared2' is defined twice"):
        second()
    assert first().definition == kept.definition, "the same limiter made again is fine"


def test_the_same_limiter_made_again_is_fine_until_another_is_refused() -> None:
    kept = limiter.bucket("github", 5000, "hour")
    again = limiter.bucket("github", 5000, 3600, wait_timeout=5)  # patience may differ
    assert (again.limit, again.wait_timeout, kept.wait_timeout) == (5000, 5.0, 0.0)
    for uid in range(3):  # made per call, as the README's per-user names are
        limiter.bucket(f"user-{uid}", 3, "minute")
        limiter.bucket(f"user-{uid}", 3, "minute")
    with pytest.raises(limiter.LimiterConflict, match="'github' is defined twice"):
        limiter.window("github", 5000, "hour")
