"""Every chapter is published as a Jupyter notebook, and the notebooks run in a plain kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from book.notebooks import chapter_notebook, notebook_name, runnable_fences

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHAPTERS = sorted(p for p in DOCS.rglob("*.md"))
SNIPPETS = {"base_path": [str(ROOT)], "check_paths": True, "dedent_subsections": True}


def _uri(chapter: Path) -> str:
    return chapter.relative_to(DOCS).as_posix()


def _published(built_site: Path, chapter: Path) -> nbformat.NotebookNode:
    path = built_site / "notebooks" / notebook_name(_uri(chapter))
    assert path.is_file(), f"{_uri(chapter)} has no notebook at {path.relative_to(built_site)}"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return notebook


def test_every_chapter_has_a_notebook_with_its_runnable_code(built_site: Path) -> None:
    assert CHAPTERS, "no chapters found"
    for chapter in CHAPTERS:
        notebook = _published(built_site, chapter)
        code = [c.source for c in notebook.cells if c.cell_type == "code"]
        fences = [f.rstrip("\n") for f in runnable_fences(chapter.read_text(encoding="utf-8"))]
        assert code == fences, f"{_uri(chapter)}: code cells differ from its runnable fences"


def test_every_chapter_page_links_to_its_notebook(built_site: Path) -> None:
    for chapter in CHAPTERS:
        uri = _uri(chapter)
        page = built_site / ("index.html" if uri == "index.md" else f"{uri[:-3]}/index.html")
        html = page.read_text(encoding="utf-8")
        assert f'download="{notebook_name(uri)}"' in html, f"{uri}: no notebook link"
        assert "Run this chapter as a notebook" in html


def test_notebook_splits_cells_like_pytest_markdown_docs() -> None:
    markdown = (
        "# Title\n\n"
        "```python\nx = 1\n```\n\n"
        "Text with $x$.\n\n"
        '```{.python notest title="t.py"}\nnot run\n```\n\n'
        '```python exec="on" html="on" notest\nprint("<svg/>")\n```\n\n'
        "```{.python continuation}\nassert x == 1\n```\n\n"
        '!!! note "Careful"\n    Indented text.\n\n'
        "    ```python\n    inside_admonition = True\n    ```\n"
    )
    notebook = chapter_notebook(markdown, snippet_config=SNIPPETS)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert code == ["x = 1", "assert x == 1"]
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "```python\nnot run" in text and "*t.py*" in text  # brace fence made plain
    assert '```python\nprint("<svg/>")' in text
    assert "> **Careful**" in text  # admonition as a block quote
    assert "%pip install executable-transformer" in notebook.cells[0].source


def _runnable_chapters() -> list[Path]:
    return [c for c in CHAPTERS if runnable_fences(c.read_text(encoding="utf-8"))]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", _runnable_chapters(), ids=_uri)
def test_chapter_notebook_runs_end_to_end(
    chapter: Path, built_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    notebook = _published(built_site, chapter)
    # A reader runs the notebook anywhere with the package installed; run it outside the
    # repository, with the repository importable in case the package is not installed.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert errors == []
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code")
