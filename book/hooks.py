"""MkDocs hooks of the book (listed under ``hooks:`` in mkdocs.yml).

* ``on_config``: put the repository root on ``sys.path`` so markdown-exec blocks can
  ``from book.figures import svg`` (and ``import transformer`` without an install).
* ``on_files``: serve MathJax 3 from the site itself (files of the ``django-static-mathjax``
  wheel, added as site files, so ``mkdocs build`` and ``mkdocs serve`` both carry them), and add
  one generated notebook per chapter under ``notebooks/``, and each notebook page
  (``docs/notebooks/NAME.py``) as ``notebooks/NAME.ipynb`` with the install cell first.
  Each notebook's first code cell installs the package the book was built from
  (``book.notebooks.package_source``: the PyPI release once CHANGELOG.md dates the version, else
  the repository at the commit checked out).
* ``on_page_markdown``: put the "Run this chapter as a notebook" link (a download of the notebook
  built with the page) and an "Open in Colab" link under the chapter's title. Colab opens
  notebooks from GitHub only: the link points at the copy that the deploy job of
  ``.github/workflows/book.yml`` pushes to the ``notebooks`` branch with each published site.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mkdocs.exceptions import PluginError  # noqa: E402
from mkdocs.structure.files import File, Files  # noqa: E402

from book.notebooks import (  # noqa: E402
    chapter_notebook,
    colab_url,
    installing_notebook,
    notebook_name,
    package_source,
)

log = logging.getLogger("mkdocs.hooks.book")

MATHJAX_DEST = "assets/mathjax"
# tex-svg.js is the whole renderer (TeX input, SVG output: no font files). The rest is only
# loaded on demand: TeX extensions by \require/autoload, the menu's accessibility tools.
MATHJAX_FILES = ("tex-svg.js",)
MATHJAX_DIRS = ("input/tex/extensions", "ui", "a11y", "sre")
NOTEBOOK_DIR = "notebooks"

# src_uri of each chapter page -> src_uri of its generated notebook, filled by on_files.
_notebooks: dict[str, str] = {}


def mathjax_root() -> Path:
    """The ``es5`` folder of MathJax 3 installed by the ``django-static-mathjax`` wheel."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError(
            "MathJax is missing: install the book's dependencies with pip install -e '.[docs]' "
            "(the django-static-mathjax wheel carries MathJax 3)."
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if not (root / "tex-svg.js").is_file():
        raise PluginError(f"MathJax 3 found at {root} has no tex-svg.js")
    return root


def _mathjax_files(config) -> list[File]:
    root = mathjax_root()
    sources = [root / name for name in MATHJAX_FILES]
    for folder in MATHJAX_DIRS:
        sources.extend(sorted(p for p in (root / folder).rglob("*") if p.is_file()))
    return [
        File.generated(
            config,
            f"{MATHJAX_DEST}/{source.relative_to(root).as_posix()}",
            abs_src_path=str(source),
        )
        for source in sources
    ]


def on_config(config):
    # markdown-exec runs figure code inside this process.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_files(files: Files, config) -> Files:
    for file in _mathjax_files(config):
        files.append(file)

    _notebooks.clear()
    snippet_config = config.mdx_configs.get("pymdownx.snippets", {})
    source = package_source(ROOT)
    log.info("notebooks install %s", source.requirement)
    for page_file in list(files.documentation_pages()):
        if not page_file.src_uri.endswith(".md") or page_file.abs_src_path is None:
            continue  # notebooks rendered by mkdocs-jupyter are pages too
        target = f"{NOTEBOOK_DIR}/{notebook_name(page_file.src_uri)}"
        if files.get_file_from_path(target) is not None:
            raise PluginError(f"{target} would hide docs/{target}: rename one of them")
        markdown = Path(page_file.abs_src_path).read_text(encoding="utf-8")
        try:
            notebook = chapter_notebook(markdown, snippet_config=snippet_config, source=source)
        except Exception as error:  # a broken snippet path, say: name the page
            raise PluginError(f"notebook of {page_file.src_uri}: {error}") from error
        content = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        files.append(File.generated(config, target, content=content))
        _notebooks[page_file.src_uri] = target
    for page_file in list(files.documentation_pages()):
        # Notebook pages (docs/notebooks/NAME.py, rendered by mkdocs-jupyter) are also published
        # as notebooks/NAME.ipynb with the install cell first, for the download and Colab links.
        uri = page_file.src_uri
        if not (uri.startswith(f"{NOTEBOOK_DIR}/") and uri.endswith(".py")):
            continue
        target = uri[: -len(".py")] + ".ipynb"
        if files.get_file_from_path(target) is not None:
            raise PluginError(f"{target} is generated from {uri}: rename one of them")
        import jupytext

        notebook = installing_notebook(jupytext.read(page_file.abs_src_path), source=source)
        content = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        files.append(File.generated(config, target, content=content))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    target = _notebooks.get(page.file.src_uri)
    if target is None:
        return markdown
    # A link relative to the chapter's Markdown file: MkDocs checks it and rewrites the URL.
    depth = page.file.src_uri.count("/")
    href = "../" * depth + target
    name = Path(target).name
    link = (
        f"[Run this chapter as a notebook]({href}){{ .md-button .book-notebook-link "
        f'download="{name}" title="Download {name}: the runnable code of this chapter" }}\n'
        f"[Open in Colab]({colab_url(name)}){{ .md-button .book-notebook-link .book-colab-link "
        f'title="Open {name} in Google Colab (the notebook of the published book)" }}\n'
    )
    lines = markdown.splitlines(keepends=True)
    in_fence = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if not in_fence and line.startswith("# "):
            lines.insert(index + 1, "\n" + link + "\n")
            return "".join(lines)
    return link + "\n" + markdown
