"""Find the snippet sections of the package and the places where chapters include them.

A section in the package::

    # --8<-- [start:NAME]
    ...
    # --8<-- [end:NAME]

An include in a chapter (inside a ```` ```{.python notest title="transformer/FILE.py"} ```` fence)::

    --8<-- "transformer/FILE.py:NAME"

The patterns follow pymdownx.snippets: names are a letter then letters, digits, ``-`` or ``_``;
a marker or include preceded by ``;`` is escaped (shown literally, not processed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Include", "Section", "find_includes", "find_sections"]

_MARKER = re.compile(
    r"(?<!;)-{1,}8<-{1,}[ \t]+\[[ \t]*(?P<type>start|end)[ \t]*:[ \t]*"
    r"(?P<name>[a-z][-_0-9a-z]*)[ \t]*\]",
    re.IGNORECASE,
)
_INCLUDE = re.compile(
    r"""^[ \t]*(?P<escape>;*)-{1,}8<-{1,}[ \t]+(?P<quote>["'])(?P<target>.+?)(?P=quote)[ \t]*$"""
)
_SECTION_SUFFIX = re.compile(r"^(?P<path>.*?):(?P<name>[a-z][-_0-9a-z]*)$", re.IGNORECASE)
_LINES_SUFFIX = re.compile(r"^(?P<path>.*?)((?::-?[0-9]*){1,2}(?:,-?[0-9]*(?::-?[0-9]*)?)*)$")


@dataclass(frozen=True)
class Section:
    path: str  # relative to the repository root, POSIX form
    name: str
    start_line: int  # 1-based line of the start marker


@dataclass(frozen=True)
class Include:
    source: str  # the chapter, relative to the repository root
    line: int  # 1-based
    path: str  # the included file, as written
    name: str | None  # the section, or None for a whole file
    lines: str | None  # a line range such as ":10:20", which is not allowed for package code


def find_sections(root: Path, files: Iterable[Path]) -> tuple[list[Section], list[str]]:
    """All sections in ``files`` and a list of problems (unbalanced or duplicated markers)."""
    sections: list[Section] = []
    problems: list[str] = []
    for file in sorted(files):
        rel = file.relative_to(root).as_posix()
        open_sections: dict[str, int] = {}
        seen: set[str] = set()
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            for match in _MARKER.finditer(line):
                name = match["name"]
                if match["type"].lower() == "start":
                    if name in open_sections:
                        problems.append(f"{rel}:{number}: [start:{name}] opened twice")
                    elif name in seen:
                        problems.append(f"{rel}:{number}: section {name!r} defined twice")
                    open_sections[name] = number
                elif name not in open_sections:
                    problems.append(f"{rel}:{number}: [end:{name}] without [start:{name}]")
                else:
                    sections.append(Section(rel, name, open_sections.pop(name)))
                    seen.add(name)
        problems.extend(
            f"{rel}:{number}: [start:{name}] never ended" for name, number in open_sections.items()
        )
    return sections, problems


def find_includes(root: Path, files: Iterable[Path]) -> list[Include]:
    """Every single-line ``--8<-- "path"`` include in ``files`` (escaped ones excluded)."""
    includes: list[Include] = []
    for file in sorted(files):
        rel = file.relative_to(root).as_posix()
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            match = _INCLUDE.match(line)
            if not match or match["escape"]:
                continue
            target = match["target"].strip()
            if section := _SECTION_SUFFIX.match(target):
                includes.append(Include(rel, number, section["path"], section["name"], None))
            elif lines := _LINES_SUFFIX.match(target):
                includes.append(Include(rel, number, lines["path"], None, lines[2]))
            else:
                includes.append(Include(rel, number, target, None, None))
    return includes
