"""The docs stand alone: every link and file reference in them resolves inside the
repository, none points outside it, and docs/redis-layout.md names every Redis key that
``sidequest.keys`` defines."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from sidequest import keys

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "tests").rglob("README.md"), *(ROOT / "bench").rglob("README.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# A path in backticks that starts at a top-level directory of the repository, optionally
# with a pytest node (`tests/x.py::test_name`).
PATH_REF = re.compile(r"`((?:src|tests|bench|docs|examples)/[\w./-]+?)(?:::(\w+))?`")
OUTSIDE = re.compile(r"\.\./shared|shared/docs|DESIGN\.md|sidekiq-wire", re.IGNORECASE)


def _doc_ids() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in DOCS]


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.MULTILINE)}


@pytest.mark.parametrize("doc", DOCS, ids=_doc_ids())
def test_every_link_resolves(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_ids())
def test_every_file_reference_resolves(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = []
    for ref, test_name in PATH_REF.findall(text):
        path = ROOT / ref.rstrip(".")
        if "*" in ref or "<" in ref:
            continue
        if not path.exists():
            missing.append(ref)
        elif test_name and not re.search(rf"def {test_name}\b", path.read_text("utf-8")):
            missing.append(f"{ref}::{test_name}")
    assert not missing, f"{doc.relative_to(ROOT)} names what the repository lacks: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_ids())
def test_no_doc_points_outside_the_repository(doc: Path) -> None:
    found = OUTSIDE.findall(doc.read_text(encoding="utf-8"))
    assert not found, f"{doc.relative_to(ROOT)} refers to files users do not have: {found}"


def _key_texts() -> list[str]:
    """The fixed part of every key that sidequest.keys defines: constants as they are, and
    for each function the text around its argument."""
    texts = []
    for name, value in vars(keys).items():
        if name.startswith("_") or name.endswith("_PREFIX"):
            continue
        if isinstance(value, str):
            texts.append(value)
        elif (inspect.isfunction(value) and value.__module__ == keys.__name__
              # a switch and a number, not key names
              and value not in (keys.use_cluster_names, keys.over_span)):
            n = len(inspect.signature(value).parameters)
            built = value(*["\x00"] * n)
            texts.extend(part for part in built.split("\x00") if part)
    return texts


def test_redis_layout_names_every_key() -> None:
    layout = (ROOT / "docs" / "redis-layout.md").read_text(encoding="utf-8")
    code_spans = " ".join(re.findall(r"`([^`]+)`", layout))
    missing = [text for text in _key_texts() if text not in code_spans]
    assert not missing, f"docs/redis-layout.md does not list these keys: {missing}"
