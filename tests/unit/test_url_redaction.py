"""Redis URLs as logs, banners, pages and errors show them: no password, wherever the URL
carries it (before the host, or as redis-py's ``?password=``, the form for unix sockets)."""

from __future__ import annotations

import pytest

from sidequest.urls import redacted


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:S3cret@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://user:S3cret@h/0", "redis://user:***@h/0"),
    ("redis://127.0.0.1:7419/0?password=S3cret", "redis://127.0.0.1:7419/0?password=***"),
    ("unix:///run/redis.sock?db=1&password=S3cret&timeout=2",
     "unix:///run/redis.sock?db=1&password=***&timeout=2"),
    ("redis://h/0?PASSWORD=S3cret#x", "redis://h/0?PASSWORD=***#x"),
    ("redis://u:S3cret@h/0?password=S3cret", "redis://u:***@h/0?password=***"),
    ("redis+cluster://a:1,b:2?password=S3cret", "redis+cluster://a:1,b:2?password=***"),
    ("redis://h:6379/0?username=u", "redis://h:6379/0?username=u"),  # nothing to hide
])
def test_no_password_is_shown(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert "S3cret" not in redacted(url)
