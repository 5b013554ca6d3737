"""One spelling (American) and one bullet style (`-`) across the book and the README.

Code is left out of the check (fenced blocks and inline code spans): identifiers such as
``transformer.viz.nearest_neighbours`` are names, not prose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

# British stems and words, each with its American spelling.
BRITISH = {
    "normalis": "normaliz", "initialis": "initializ", "behaviour": "behavior",
    "colour": "color", "optimis": "optimiz", "parallelis": "paralleliz",
    "modelling": "modeling", "modelled": "modeled", "neighbour": "neighbor",
    "favour": "favor", "penalis": "penaliz", "memoris": "memoriz", "labelled": "labeled",
    "labelling": "labeling", "specialis": "specializ", "licence": "license", "grey": "gray",
    "centre": "center", "analys": "analyz", "recognis": "recogniz", "minimis": "minimiz",
    "maximis": "maximiz", "tokenis": "tokeniz", "visualis": "visualiz", "generalis": "generaliz",
    "summaris": "summariz", "organis": "organiz", "utilis": "utiliz", "regularis": "regulariz",
    "vectoris": "vectoriz", "randomis": "randomiz", "characteris": "characteriz",
    "synchronis": "synchroniz", "travelled": "traveled", "cancelled": "canceled",
    "signalled": "signaled", "programme": "program", "catalogue": "catalog", "learnt": "learned",
    "amortis": "amortiz", "stabilis": "stabiliz", "quantis": "quantiz", "serialis": "serializ",
}
WORD = re.compile(r"\b(" + "|".join(BRITISH) + r")\w*", re.IGNORECASE)
AMERICAN_TOO = ("parallelism",)  # words that share a British stem but are spelled alike
FENCE = re.compile(r"^(\s*)(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
STAR_BULLET = re.compile(r"^\s*\* ")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of the lines outside fenced code, inline code removed."""
    lines, in_fence = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append((number, INLINE_CODE.sub("``", line)))
    return lines


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_prose_uses_american_spelling(page: Path) -> None:
    found = [f"{page.name}:{n}: {m.group(0)!r} (American: {BRITISH[m.group(1).lower()]}...)"
             for n, line in prose_lines(page) for m in WORD.finditer(line)
             if not m.group(0).lower().startswith(AMERICAN_TOO)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_bullets_are_dashes(page: Path) -> None:
    found = [f"{page.name}:{n}: {line.strip()[:60]}" for n, line in prose_lines(page)
             if STAR_BULLET.match(line)]
    assert not found, "\n".join(found)


def test_the_checks_catch_what_they_forbid(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("We initialise it.\n* a bullet\n```python\n* x  # colour\n```\n"
                    "`nearest_neighbours` is a name.\n", encoding="utf-8")
    lines = prose_lines(page)
    assert [m.group(0) for _, line in lines for m in WORD.finditer(line)] == ["initialise"]
    assert [n for n, line in lines if STAR_BULLET.match(line)] == [2]
