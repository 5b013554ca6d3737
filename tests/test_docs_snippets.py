"""Prose and code cannot drift: every snippet section of the package is shown by a chapter, and
every chapter shows only sections that exist.

Package code marks a section with ``# --8<-- [start:NAME]`` / ``# --8<-- [end:NAME]``; a chapter
includes it with ``--8<-- "transformer/FILE.py:NAME"`` inside a
```` ```{.python notest title="transformer/FILE.py"} ```` fence.
"""

from __future__ import annotations

import re
from pathlib import Path

from book.snippets import find_includes, find_sections

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "transformer"
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<info>.*)$")


def package_sections():
    return find_sections(ROOT, PACKAGE.rglob("*.py"))


def chapter_includes():
    return find_includes(ROOT, DOCS.rglob("*.md"))


def package_includes():
    return [i for i in chapter_includes() if i.path.startswith("transformer/")]


def test_snippet_markers_are_balanced() -> None:
    _, problems = package_sections()
    assert problems == [], "unbalanced snippet markers:\n" + "\n".join(problems)


def test_every_included_section_exists() -> None:
    defined = {(s.path, s.name) for s in package_sections()[0]}
    missing = [
        f"{i.source}:{i.line}: {i.path}:{i.name}"
        for i in package_includes()
        if i.name is not None and (i.path, i.name) not in defined
    ]
    assert missing == [], "chapters include sections that do not exist:\n" + "\n".join(missing)
    included = {(i.path, i.name) for i in package_includes() if i.name is not None}
    assert included <= defined


def test_package_code_is_included_by_section_not_by_line_numbers() -> None:
    by_lines = [f"{i.source}:{i.line}: {i.path}{i.lines}" for i in package_includes() if i.lines]
    assert by_lines == [], "line ranges drift when the code changes; use a section:\n" + "\n".join(
        by_lines
    )
    whole_files = [i for i in package_includes() if i.name is None and i.lines is None]
    missing = [
        f"{i.source}:{i.line}: {i.path}" for i in whole_files if not (ROOT / i.path).is_file()
    ]
    assert missing == [], "chapters include files that do not exist:\n" + "\n".join(missing)


def test_every_section_is_included_by_a_chapter() -> None:
    sections, _ = package_sections()
    included = {(i.path, i.name) for i in package_includes()}
    unused = [
        f"{s.path}:{s.start_line}: [start:{s.name}]"
        for s in sections
        if (s.path, s.name) not in included
    ]
    assert unused == [], (
        "snippet sections that no chapter shows (include them, or remove the markers):\n"
        + "\n".join(unused)
    )


def test_included_source_sits_in_a_titled_notest_fence() -> None:
    """pytest-markdown-docs does not expand --8<--: an include in a runnable fence would fail,
    and the fence's title must name the file the code comes from."""
    problems = []
    for chapter in sorted(DOCS.rglob("*.md")):
        rel = chapter.relative_to(ROOT).as_posix()
        includes = {i.line: i for i in find_includes(ROOT, [chapter])}
        fence = None  # (ticks, info, line) of the open fence
        for number, line in enumerate(chapter.read_text(encoding="utf-8").splitlines(), start=1):
            match = _FENCE.match(line)
            if match and fence is None:
                fence = (match["ticks"], match["info"].strip(), number)
                continue
            if match and fence is not None and match["ticks"] == fence[0] and not match["info"]:
                fence = None
                continue
            include = includes.get(number)
            if include is None or not include.path.startswith("transformer/"):
                continue
            info = fence[1] if fence else ""
            expected = f'title="{include.path}"'
            if not (info.startswith("{") and ".python" in info and "notest" in info):
                problems.append(f"{rel}:{number}: include outside a {{.python notest ...}} fence")
            elif expected not in info:
                problems.append(f"{rel}:{fence[2]}: fence title should be {expected}")
    assert problems == [], "\n".join(problems)


def test_scanner_finds_sections_and_includes(tmp_path: Path) -> None:
    """The checks above pass vacuously on an empty package; prove the scanner sees markers."""
    code = tmp_path / "transformer" / "demo.py"
    code.parent.mkdir()
    code.write_text(
        "# --8<-- [start:outer]\n"
        "class A:\n"
        "    # --8<-- [start:inner]\n"
        "    x = 1\n"
        "    # --8<-- [end:inner]\n"
        "# --8<-- [end:outer]\n"
        "# --8<-- [start:open]\n"
        "# --8<-- [end:never_started]\n"
    )
    chapter = tmp_path / "chapter.md"
    chapter.write_text(
        '```{.python notest title="transformer/demo.py"}\n'
        '--8<-- "transformer/demo.py:inner"\n'
        "```\n"
        ';--8<-- "transformer/demo.py:escaped"\n'
        '--8<-- "transformer/demo.py:3:4"\n'
    )
    sections, problems = find_sections(tmp_path, [code])
    assert {(s.name, s.start_line) for s in sections} == {("inner", 3), ("outer", 1)}
    assert len(problems) == 2
    assert any("never ended" in p for p in problems)
    assert any("without [start:never_started]" in p for p in problems)
    includes = find_includes(tmp_path, [chapter])
    assert [(i.name, i.lines) for i in includes] == [("inner", None), (None, ":3:4")]
