"""The default install is the fast one: hiredis is a required dependency, and redis-py uses
its parser."""

from __future__ import annotations

from importlib import metadata

from redis.utils import HIREDIS_AVAILABLE


def test_hiredis_is_required_and_used() -> None:
    required = metadata.requires("sidequest") or []
    assert any(r.split(";")[0].strip().startswith("hiredis") and "extra ==" not in r
               for r in required), required
    assert HIREDIS_AVAILABLE
