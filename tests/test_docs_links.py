"""No link of the book promises a page that does not exist: every relative link to a ``.md``
file in docs/ (and in README.md, to docs/) points to a file that is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
LINK = re.compile(r"\]\(\s*<?([^)\s>]+?\.md)(?:#[^)\s]*)?>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_md_links(text: str) -> list[str]:
    """The targets of the Markdown links to ``.md`` files that are not absolute URLs."""
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_md_link_points_to_an_existing_file(page: Path) -> None:
    links = relative_md_links(page.read_text(encoding="utf-8"))
    missing = [t for t in links if not (page.parent / t).resolve().is_file()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing pages: {missing}"


def test_the_link_pattern_finds_relative_md_links_only() -> None:
    text = ("[a](01-embeddings.md) [b](02-positional-encoding.md#the-table) "
            "[c](https://example.org/x.md) [d](image.svg) [e](../README.md)")
    assert relative_md_links(text) == ["01-embeddings.md", "02-positional-encoding.md",
                                       "../README.md"]
