"""``sidequest.api`` (and ``sidequest.testing``) reached as attributes after a bare
``import sidequest``, as the migration guides write them (``sidequest.api.cancel(jid)``),
while the import alone still loads neither."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "docs" / "coming-from-celery.md", ROOT / "docs" / "coming-from-rq.md"]
#: ``sidequest.api.JobStatus(jid)``: a dotted name the guides use after ``import sidequest``.
DOTTED = re.compile(r"`(sidequest(?:\.\w+)+)")


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_sidequest_alone_loads_neither() -> None:
    out = run("import sys, sidequest; print(sorted(m for m in sys.modules"
              " if m in ('sidequest.api', 'sidequest.testing')))")
    assert out == "[]"


def test_sidequest_api_is_an_attribute_after_a_bare_import() -> None:
    out = run("import sidequest; print(sidequest.api.cancel.__module__, "
              "sidequest.testing.inline.__module__)")
    assert out == "sidequest.api.cancel sidequest.testing"


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    import sidequest

    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        sidequest.nonesuch  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.name)
def test_every_dotted_name_in_the_migration_guides_resolves(guide: Path) -> None:
    names = sorted(set(DOTTED.findall(guide.read_text(encoding="utf-8"))))
    assert "sidequest.api.cancel" in names or "sidequest.api.JobStatus" in names
    # Each name is an expression statement: one that does not resolve fails the run.
    run("import sidequest; " + "; ".join(names))
