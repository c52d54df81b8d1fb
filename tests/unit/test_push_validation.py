"""sidequest.items.normalize refuses what Sidekiq's client refuses: a non-numeric ``at``,
tags that are not a list, and a ``retry_for`` that is not a relative number of seconds."""

from __future__ import annotations

from typing import Any

import pytest

from sidequest.items import normalize


def item(**fields: Any) -> dict[str, Any]:
    return {"class": "Report", "args": [1], **fields}


@pytest.mark.parametrize("at", ["2030-01-01", None, True, float("nan"), [1]])
def test_at_must_be_a_number(at: Any) -> None:
    with pytest.raises(TypeError, match="job 'at' must be a number"):
        normalize(item(at=at))


@pytest.mark.parametrize("at", [0, 1_700_000_000, 1_700_000_000.25])
def test_numeric_at_is_accepted(at: float) -> None:
    assert normalize(item(at=at))["at"] == at


@pytest.mark.parametrize("tags", ["urgent", ("a", "b"), {"a": 1}, 3])
def test_tags_must_be_a_list(tags: Any) -> None:
    with pytest.raises(TypeError, match="job tags must be a list"):
        normalize(item(tags=tags))


def test_list_tags_and_no_tags_are_accepted() -> None:
    assert normalize(item(tags=["a", "b"]))["tags"] == ["a", "b"]
    assert "tags" not in normalize(item())
    assert normalize(item(tags=None))["tags"] is None


@pytest.mark.parametrize("window", [1_700_000_000, "1h", float("inf")])
def test_retry_for_must_be_relative_seconds(window: Any) -> None:
    with pytest.raises(ValueError, match="retry_for must be a number of seconds"):
        normalize(item(retry_for=window))


def test_retry_for_in_seconds_is_accepted() -> None:
    assert normalize(item(retry_for=3600))["retry_for"] == 3600
