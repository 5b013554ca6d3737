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

Before the chapter's code, every notebook gets one more code cell that installs the package in a
form that exists, so the notebook runs wherever a reader opens it (Jupyter, Colab):

* a **released** version, ``pip install executable-transformer==X.Y.Z``, when the book is built
  from version ``X.Y.Z`` and CHANGELOG.md dates that version (``## [X.Y.Z] - YYYY-MM-DD``);
* otherwise the repository at the commit that built the book,
  ``pip install "executable-transformer @ git+https://github.com/OWNER/REPO@COMMIT"``.

The cell skips pip when the kernel already imports ``transformer`` at that version (a clone of the
repository, or a second run).
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import nbformat
from markdown_it import MarkdownIt

__all__ = [
    "DISTRIBUTION",
    "NOTEBOOK_BRANCH",
    "REPOSITORY",
    "PackageSource",
    "Segment",
    "chapter_notebook",
    "colab_url",
    "fence_info",
    "install_cell",
    "installing_notebook",
    "is_released",
    "notebook_name",
    "package_source",
    "package_version",
    "runnable_fences",
    "segments",
]

PYTHON_LANGS = ("py", "python", "python3")

DISTRIBUTION = "executable-transformer"  # the name on PyPI (pyproject.toml's project.name)
REPOSITORY = "executable-transformer/executable-transformer"  # GitHub owner/name
# The branch that .github/workflows/book.yml's deploy job force-pushes the generated notebooks to
# (one commit, the notebooks of the deployed site at its root): Colab opens them from there.
NOTEBOOK_BRANCH = "notebooks"

_DATED_HEADING = r"^## \[{version}\] - \d{{4}}-\d{{2}}-\d{{2}}\s*$"


@dataclass(frozen=True)
class PackageSource:
    """What a notebook installs: the package ``version`` and the pip ``requirement`` giving it."""

    version: str
    requirement: str
    released: bool

    @classmethod
    def release(cls, version: str) -> PackageSource:
        """The version published on PyPI: ``executable-transformer==version``."""
        return cls(version, f"{DISTRIBUTION}=={version}", released=True)

    @classmethod
    def commit(cls, version: str, commit: str) -> PackageSource:
        """The repository at ``commit`` (a hash or a branch), for a version not on PyPI."""
        if not re.fullmatch(r"[0-9A-Za-z._/-]+", commit):
            raise ValueError(f"commit must be a git hash or branch name, got {commit!r}")
        url = f"git+https://github.com/{REPOSITORY}@{commit}"
        return cls(version, f"{DISTRIBUTION} @ {url}", released=False)


def package_version(root: Path) -> str:
    """``transformer.__version__`` as written in ``root/transformer/__init__.py``, read without
    importing the package (the same literal setuptools reads for the distribution's version)."""
    tree = ast.parse((root / "transformer" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise ValueError(f"{root / 'transformer' / '__init__.py'} sets no __version__ string")


def is_released(version: str, changelog: str) -> bool:
    """Whether CHANGELOG.md (Keep a Changelog) dates ``version``: ``## [0.1.0] - 2026-05-01``
    means released, ``## [0.1.0] - Unreleased`` (or no heading) means not."""
    pattern = _DATED_HEADING.format(version=re.escape(version))
    return re.search(pattern, changelog, flags=re.MULTILINE) is not None


def _head_commit(root: Path) -> str | None:
    try:
        run = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=30, check=False)
    except OSError:  # no git
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def package_source(root: Path) -> PackageSource:
    """What the notebooks of a book built from ``root`` install.

    The released version when CHANGELOG.md dates ``transformer.__version__``; otherwise the
    repository at the commit checked out in ``root`` (``git rev-parse HEAD``), or at ``main``
    where ``root`` is no git checkout.
    """
    version = package_version(root)
    changelog = root / "CHANGELOG.md"
    if changelog.is_file() and is_released(version, changelog.read_text(encoding="utf-8")):
        return PackageSource.release(version)
    return PackageSource.commit(version, _head_commit(root) or "main")


_INSTALL_CELL = Template("""\
# Install the package this notebook was built with, unless this kernel already has it.
import importlib
import sys

_version = "$version"
try:
    import transformer

    _found = transformer.__version__
except ImportError:
    _found = None
if _found != _version:
    get_ipython().run_line_magic("pip", '$pip_line')
    for _name in [n for n in sys.modules if n.split(".")[0] == "transformer"]:
        del sys.modules[_name]  # a version imported before the install
    importlib.invalidate_caches()
    import transformer
assert transformer.__version__ == _version, (
    f"transformer {transformer.__version__} is imported, this notebook needs {_version}:"
    " restart the kernel and run this cell again"
)
print(f"transformer {transformer.__version__} from {transformer.__file__}")""")


def install_cell(source: PackageSource) -> str:
    """The code of a notebook's first cell: ``%pip install`` the package unless the kernel
    already imports ``transformer`` at ``source.version``; then check the version imported.

    ``get_ipython().run_line_magic("pip", ...)`` is ``%pip`` written as plain Python: it installs
    into the kernel's own environment, in Jupyter and in Colab alike. The requirement is in
    double quotes, which both a POSIX shell and Windows' cmd understand.
    """
    if re.search(r"[\"'\\$`]", source.requirement + source.version):
        raise ValueError(f"requirement or version has a quote or shell character: {source!r}")
    pip_line = f'install --quiet "{source.requirement}"'
    return _INSTALL_CELL.substitute(version=source.version, pip_line=pip_line)


def colab_url(name: str) -> str:
    """Where Colab opens the published notebook ``name`` (``09-training.ipynb``): the file at the
    root of the ``notebooks`` branch that the book's deploy job pushes."""
    return (
        f"https://colab.research.google.com/github/{REPOSITORY}/blob/{NOTEBOOK_BRANCH}/{name}"
    )


def _install_note(source: PackageSource) -> str:
    where = (
        f"version {source.version} from PyPI"
        if source.released
        else f"version {source.version} from the book's repository, at the commit that built it"
    )
    return (
        "*This notebook is generated from a chapter of **The Executable Transformer**: its code "
        "cells are the chapter's runnable examples, in order, and they share one kernel.* "
        f"The first code cell installs the package, {where} "
        f"(`%pip install \"{source.requirement}\"`), unless the kernel already imports "
        f"`transformer` {source.version}; then run the cells in order."
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
    markdown: str,
    *,
    snippet_config: Mapping[str, Any],
    source: PackageSource,
    title: str | None = None,
) -> nbformat.NotebookNode:
    """Build the notebook of one chapter.

    Args:
        markdown: the chapter's Markdown source, as written (not yet expanded by MkDocs).
        snippet_config: the ``pymdownx.snippets`` options of the book (``base_path`` at least).
        source: what the install cell installs (``package_source(root)`` for the book's build).
        title: shown in the first cell when given.

    Returns:
        An nbformat v4 notebook: a note on how to run it, the install cell (``install_cell``),
        then one code cell per runnable fence and Markdown cells for everything in between.
        Outputs are empty.
    """
    markdown = _FRONT_MATTER.sub("", markdown, count=1)
    note = _install_note(source)
    if title:
        note = f"{note}\n\nChapter: *{title}*."
    cells = [nbformat.v4.new_markdown_cell(note), nbformat.v4.new_code_cell(install_cell(source))]
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


def installing_notebook(notebook: nbformat.NotebookNode, *,
                        source: PackageSource) -> nbformat.NotebookNode:
    """A notebook page of the book (``docs/notebooks/*.py``, jupytext) as readers download it:
    the install cell (:func:`install_cell`) first, then the page's cells, outputs cleared.

    Args:
        notebook: the page's notebook, as jupytext reads it.
        source: what the install cell installs (``package_source(root)``).

    Returns:
        A new nbformat v4 notebook with stable cell ids.
    """
    cells = [nbformat.v4.new_code_cell(install_cell(source))]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(cell.source))
        elif cell.cell_type == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(cell.source))
    result = nbformat.v4.new_notebook(cells=cells)
    result.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
    result.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(result.cells):
        cell["id"] = f"cell-{index}"
    nbformat.validate(result)
    return result
