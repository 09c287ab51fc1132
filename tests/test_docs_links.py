"""Every relative link in the Markdown documents points at a file that exists, and every #anchor at
a heading of that file, so that moving text between README and docs/ cannot leave a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks, where a `](...)` is code, not a link."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces as
    hyphens, and -1, -2 ... after a repeated one."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+?)\s*$", _prose(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def test_heading_anchors_follow_githubs_rules():
    text = "# Results\n## A development split, held out\n```\n# not a heading\n```\n### Results\n"
    assert heading_anchors(text) == {"results", "a-development-split-held-out", "results-1"}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path):
    text = document.read_text()
    dead = []
    for target in LINK.findall(_prose(text)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            dead.append(f"{target} (no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file})")
        elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file.read_text()):
            dead.append(f"{target} (no heading #{anchor} in {file.name})")
    assert not dead, f"{document.relative_to(ROOT)}: dead links: {', '.join(dead)}"
