"""Turn a chapter's Markdown into a Jupyter notebook.

The rule is the one pytest-markdown-docs uses to decide what to execute, so a notebook runs
exactly the code the tests run:

* a fence whose language is ``python``/``py``/``python3`` and that carries no ``notest`` option
  (plain ```` ```python ```` or brace form ```` ```{.python continuation} ````) becomes a code cell;
* everything else becomes Markdown cells: prose, equations, included package source
  (``--8<--`` lines are expanded the way MkDocs expands them), build-time figure code
  (markdown-exec blocks carry ``notest``), admonitions (rewritten as block quotes).

Fences are found with markdown-it in CommonMark mode, as pytest-markdown-docs finds them: a fence
indented inside an admonition is an indented code block there, so it is neither tested nor a
code cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from markdown_it import MarkdownIt

__all__ = [
    "INSTALL_NOTE",
    "Segment",
    "chapter_notebook",
    "fence_info",
    "notebook_name",
    "runnable_fences",
    "segments",
]

PYTHON_LANGS = ("py", "python", "python3")

INSTALL_NOTE = (
    "*This notebook is generated from a chapter of **The Executable Transformer**: its code cells "
    "are the chapter's runnable examples, in order, and they share one kernel.* "
    "To run it outside the book's repository, install the package first, for example with "
    "`%pip install executable-transformer` in a new cell."
)


@dataclass(frozen=True)
class Segment:
    """A run of lines of the chapter: either one runnable fence or the Markdown between them."""

    kind: str  # "code" or "markdown"
    text: str  # code without the fence lines, or the Markdown as written
    start_line: int  # 0-based line of the chapter where the segment starts


def fence_info(info: str) -> tuple[str | None, set[str]]:
    """Split a fence's info string into (language, options), superfences brace form included.

    ```` ```python exec="on" notest ```` gives ``("python", {'exec="on"', "notest"})`` and
    ```` ```{.python notest title="x.py"} ```` gives ``("python", {"notest", 'title="x.py"'})``.
    """
    info = info.strip()
    if info.startswith("{"):
        words = info.strip("{}").split()
        lang = next((w[1:] for w in words if w.startswith(".")), None)
        options = {w for w in words if not w.startswith(".")}
        return lang, options
    words = info.split()
    return (words[0] if words else None), set(words[1:])


def _is_runnable(info: str) -> bool:
    lang, options = fence_info(info)
    return lang in PYTHON_LANGS and "notest" not in options


def runnable_fences(markdown: str) -> list[str]:
    """The code of every fence that pytest-markdown-docs executes, in order."""
    return [segment.text for segment in segments(markdown) if segment.kind == "code"]


def segments(markdown: str) -> Iterator[Segment]:
    """Cut ``markdown`` into alternating Markdown and runnable-code segments."""
    lines = markdown.splitlines(keepends=True)
    parser = MarkdownIt("commonmark")
    position = 0
    for token in parser.parse(markdown):
        if token.type != "fence" or not token.map or not _is_runnable(token.info):
            continue
        start, end = token.map
        if start > position:
            yield Segment("markdown", "".join(lines[position:start]), position)
        yield Segment("code", token.content, start)
        position = end
    if position < len(lines):
        yield Segment("markdown", "".join(lines[position:]), position)


_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.DOTALL)
_ADMONITION = re.compile(
    r'^(?P<indent>[ \t]*)(?:!!!|\?\?\?\+?)\s+(?P<kind>[\w-]+)(?:\s+"(?P<title>[^"]*)")?[^\n]*$'
)
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_TITLE = re.compile(r'title="([^"]*)"')


def _plain_fences(text: str) -> str:
    """Rewrite superfences/markdown-exec info strings to a bare language Jupyter understands."""
    out = []
    for line in text.splitlines(keepends=True):
        match = _FENCE_OPEN.match(line.rstrip("\n"))
        if match and match["info"].strip():
            lang, options = fence_info(match["info"])
            title = next((m[1] for o in options if (m := _TITLE.match(o))), None)
            if title:
                out.append(f"{match['indent']}*{title}*\n\n")
            if any(o.startswith("exec=") for o in options):
                out.append(f"{match['indent']}*This code draws the figure of the book's page:*\n\n")
            line = f"{match['indent']}{match['ticks']}{lang or ''}\n"
        out.append(line)
    return "".join(out)


def _admonitions_to_quotes(text: str) -> str:
    """Rewrite ``!!! note "Title"`` blocks (and ``???`` details) as Markdown block quotes."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _ADMONITION.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        body_indent = indent + "    "
        title = match["title"] if match["title"] is not None else match["kind"].capitalize()
        block = [f"**{title}**" if title else ""]
        i += 1
        while i < len(lines) and (lines[i].startswith(body_indent) or not lines[i].strip()):
            block.append(lines[i][len(body_indent) :] if lines[i].strip() else "")
            i += 1
        while block and not block[-1]:
            block.pop()
        out.extend(f"{indent}> {b}".rstrip() for b in block)
        out.append("")
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _expand_snippets(text: str, snippet_config: Mapping[str, Any]) -> str:
    """Expand ``--8<--`` lines exactly as pymdownx.snippets does when MkDocs builds the page."""
    if "8<-" not in text:
        return text
    import markdown

    md = markdown.Markdown(
        extensions=["pymdownx.snippets"],
        extension_configs={"pymdownx.snippets": dict(snippet_config)},
    )
    return "\n".join(md.preprocessors["snippet"].run(text.split("\n")))


def notebook_name(src_uri: str) -> str:
    """File name of a chapter's notebook: ``03-attention.md`` → ``03-attention.ipynb``.

    The introduction (``index.md``) becomes ``00-introduction.ipynb``.
    """
    stem = Path(src_uri).with_suffix("").as_posix().replace("/", "-")
    return "00-introduction.ipynb" if stem == "index" else f"{stem}.ipynb"


def chapter_notebook(
    markdown: str, *, snippet_config: Mapping[str, Any], title: str | None = None
) -> nbformat.NotebookNode:
    """Build the notebook of one chapter.

    Args:
        markdown: the chapter's Markdown source, as written (not yet expanded by MkDocs).
        snippet_config: the ``pymdownx.snippets`` options of the book (``base_path`` at least).
        title: shown in the first cell when given.

    Returns:
        An nbformat v4 notebook: a note on how to run it, then one code cell per runnable fence
        and Markdown cells for everything in between. Outputs are empty.
    """
    markdown = _FRONT_MATTER.sub("", markdown, count=1)
    note = INSTALL_NOTE if not title else f"{INSTALL_NOTE}\n\nChapter: *{title}*."
    cells = [nbformat.v4.new_markdown_cell(note)]
    for segment in segments(markdown):
        if segment.kind == "code":
            cells.append(nbformat.v4.new_code_cell(segment.text.rstrip("\n")))
            continue
        text = _expand_snippets(segment.text, snippet_config)
        text = _admonitions_to_quotes(_plain_fences(text)).strip("\n")
        if text.strip():
            cells.append(nbformat.v4.new_markdown_cell(text))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    # Stable cell ids keep the generated file identical from one build to the next.
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"
    nbformat.validate(notebook)
    return notebook
