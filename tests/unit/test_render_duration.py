"""How the dashboard writes a wait (a queue's latency): short in seconds, long in larger units."""

from __future__ import annotations

import pytest

from sidequest.web.render import duration


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.0, "0.00 s"), (0.25, "0.25 s"), (42.46, "42.5 s"), (403.5, "6 min 43 s"),
    (7500, "2 h 5 min"), (3.2 * 86400, "3.2 d"),
])
def test_a_wait_is_written_in_the_unit_that_reads(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown
