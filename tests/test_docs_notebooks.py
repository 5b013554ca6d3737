"""Every chapter is published as a Jupyter notebook that runs where readers run it: its first
code cell installs the package in a form that exists (the PyPI release, or the repository at the
commit that built the book), Colab opens it from the branch the deploy job pushes, and every
notebook runs end to end in a plain kernel outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

import transformer
from book.notebooks import (
    NOTEBOOK_BRANCH,
    REPOSITORY,
    PackageSource,
    chapter_notebook,
    colab_url,
    install_cell,
    is_released,
    notebook_name,
    package_source,
    package_version,
    runnable_fences,
)

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


def _code(notebook: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in notebook.cells if c.cell_type == "code"]


def test_every_chapter_has_a_notebook_with_its_runnable_code(built_site: Path) -> None:
    assert CHAPTERS, "no chapters found"
    install = install_cell(package_source(ROOT))
    for chapter in CHAPTERS:
        install_code, *code = _code(_published(built_site, chapter))
        fences = [f.rstrip("\n") for f in runnable_fences(chapter.read_text(encoding="utf-8"))]
        assert install_code == install, f"{_uri(chapter)}: first code cell is not the install"
        assert code == fences, f"{_uri(chapter)}: code cells differ from its runnable fences"


def test_install_cell_names_the_package_version(built_site: Path) -> None:
    version = transformer.__version__
    assert package_version(ROOT) == version
    released = is_released(version, (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    expected = (f'"executable-transformer=={version}"' if released else
                f'"executable-transformer @ git+https://github.com/{REPOSITORY}@')
    for chapter in CHAPTERS:
        first = _code(_published(built_site, chapter))[0]
        assert f'_version = "{version}"' in first, _uri(chapter)
        assert expected in first, f"{_uri(chapter)}: the install cell does not install {expected}"


def test_every_chapter_page_links_to_its_notebook_and_to_colab(built_site: Path) -> None:
    for chapter in CHAPTERS:
        uri = _uri(chapter)
        page = built_site / ("index.html" if uri == "index.md" else f"{uri[:-3]}/index.html")
        html = page.read_text(encoding="utf-8")
        assert f'download="{notebook_name(uri)}"' in html, f"{uri}: no notebook link"
        assert "Run this chapter as a notebook" in html
        assert f'href="{colab_url(notebook_name(uri))}"' in html, f"{uri}: no Colab link"
        assert "Open in Colab" in html


def test_colab_url_opens_the_branch_that_the_deploy_job_pushes() -> None:
    assert colab_url("09-training.ipynb") == (
        "https://colab.research.google.com/github/executable-transformer/executable-transformer"
        f"/blob/{NOTEBOOK_BRANCH}/09-training.ipynb"
    )
    workflow = yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text(encoding="utf-8"))
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"]["contents"] == "write"
    scripts = [s.get("run", "") for s in deploy["steps"]]
    (publish,) = [s for s in scripts if f"git push --force origin {NOTEBOOK_BRANCH}" in s]
    assert f"git checkout --orphan {NOTEBOOK_BRANCH}" in publish
    assert 'cp "$GITHUB_WORKSPACE"/site/notebooks/*.ipynb .' in publish  # at the branch's root
    build = next(i for i, s in enumerate(scripts) if "mkdocs build" in s)
    assert build < scripts.index(publish), "the notebooks are pushed after the book is built"


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
    source = PackageSource.release("1.2.3")
    notebook = chapter_notebook(markdown, snippet_config=SNIPPETS, source=source)
    assert _code(notebook) == [install_cell(source), "x = 1", "assert x == 1"]
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "```python\nnot run" in text and "*t.py*" in text  # brace fence made plain
    assert '```python\nprint("<svg/>")' in text
    assert "> **Careful**" in text  # admonition as a block quote
    assert '%pip install "executable-transformer==1.2.3"' in notebook.cells[0].source


def test_changelog_dates_decide_released() -> None:
    dated = "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-05-01\n\n## [0.1.0] - 2026-01-02\n"
    assert is_released("0.2.0", dated) and is_released("0.1.0", dated)
    assert not is_released("0.3.0", dated)  # no heading
    assert not is_released("0.2.0", "## [0.2.0] - Unreleased\n")
    assert not is_released("0.2.0", "## [0.2.0.1] - 2026-05-01\n")  # another version
    assert not is_released("0.2.0", "## [0x2y0] - 2026-05-01\n")  # dots are literal


def _fake_root(tmp_path: Path, version: str, changelog: str) -> Path:
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "__init__.py").write_text(
        f'"""Doc."""\n\nimport os\n\n__version__ = "{version}"\n', encoding="utf-8")
    (tmp_path / "CHANGELOG.md").write_text(changelog, encoding="utf-8")
    return tmp_path


def test_released_build_installs_the_pypi_release(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, "1.2.3", "## [1.2.3] - 2026-05-01\n")
    source = package_source(root)
    assert source == PackageSource("1.2.3", "executable-transformer==1.2.3", released=True)
    assert 'run_line_magic("pip", \'install --quiet "executable-transformer==1.2.3"\')' in (
        install_cell(source))


def test_unreleased_build_installs_the_repository_at_its_commit(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, "1.3.0", "## [1.3.0] - Unreleased\n\n## [1.2.3] - 2026-05-01\n")
    assert package_source(root).requirement.endswith(f"{REPOSITORY}@main")  # not a git checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=root, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()
    source = package_source(root)
    assert source == PackageSource(
        "1.3.0",
        f"executable-transformer @ git+https://github.com/{REPOSITORY}@{head}",
        released=False,
    )
    assert f'install --quiet "{source.requirement}"' in install_cell(source)
    with pytest.raises(ValueError, match="commit must be a git hash or branch name"):
        PackageSource.commit("1.3.0", "main; rm -rf /")


class _FakeIPython:
    """Records line magics; ``%pip`` "installs" by undoing the block on ``import transformer``."""

    def __init__(self) -> None:
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str) -> None:
        self.magics.append((name, line))
        if sys.modules.get("transformer", ...) is None:
            del sys.modules["transformer"]


@pytest.fixture
def run_install_cell():
    """Run an install cell here with a fake IPython; the cell purges and re-imports
    ``transformer``, so the modules this test session imported are put back afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "transformer"}
    ipython = _FakeIPython()

    def run(source: PackageSource) -> dict:
        namespace = {"get_ipython": lambda: ipython}
        exec(compile(install_cell(source), "<install cell>", "exec"), namespace)
        return namespace

    yield ipython, run
    for name in [k for k in sys.modules if k.split(".")[0] == "transformer"]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_install_cell_skips_pip_when_the_version_is_importable(run_install_cell) -> None:
    ipython, run = run_install_cell
    namespace = run(PackageSource.release(transformer.__version__))
    assert ipython.magics == []
    assert namespace["transformer"] is transformer


def test_install_cell_runs_pip_when_the_package_is_missing(run_install_cell) -> None:
    ipython, run = run_install_cell
    sys.modules["transformer"] = None  # `import transformer` raises ImportError
    source = PackageSource.commit(transformer.__version__, "abc123")
    namespace = run(source)
    assert ipython.magics == [("pip", f'install --quiet "{source.requirement}"')]
    assert namespace["transformer"].__version__ == transformer.__version__
    assert namespace["transformer"] is not transformer  # imported anew after the install


def test_install_cell_stops_at_a_version_it_cannot_replace(run_install_cell) -> None:
    # After pip the kernel still imports another version (a clone on sys.path, say).
    ipython, run = run_install_cell
    with pytest.raises(AssertionError, match=r"needs 99\.0: restart the kernel"):
        run(PackageSource.release("99.0"))
    assert ipython.magics == [("pip", 'install --quiet "executable-transformer==99.0"')]


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where a plain ``python`` outside the repository imports the package from: the notebooks
    must find it installed, never through the repository being the working directory."""
    work = tmp_path_factory.mktemp("outside")
    run = subprocess.run(
        [sys.executable, "-c", "import transformer; print(transformer.__version__); "
         "print(transformer.__file__)"],
        cwd=work, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, (
        "the package is not installed in this environment: pip install -e '.[dev]'\n" + run.stderr
    )
    version, where = run.stdout.split()
    assert version == transformer.__version__
    return where


def _runnable_chapters() -> list[Path]:
    return [c for c in CHAPTERS if runnable_fences(c.read_text(encoding="utf-8"))]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", _runnable_chapters(), ids=_uri)
def test_chapter_notebook_runs_end_to_end(
    chapter: Path,
    built_site: Path,
    installed_package: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from nbclient import NotebookClient

    notebook = _published(built_site, chapter)
    # As a reader runs it: a kernel of this environment (jupyter_client starts the `python3`
    # kernel with sys.executable), in an empty folder outside the repository.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n{notebook_name(_uri(chapter))}: executed in {seconds:.1f} s", end="")
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert errors == []
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code")
    install = next(c for c in notebook.cells if c.cell_type == "code")
    printed = "".join(o.get("text", "") for o in install.outputs)
    assert re.fullmatch(
        rf"transformer {re.escape(transformer.__version__)} from {re.escape(installed_package)}\n",
        printed,
    ), printed  # no pip run: the installed package, the one a plain python imports


# --- the quickstart: a notebook page (docs/notebooks/quickstart.py), published with an install cell

QUICKSTART = DOCS / "notebooks" / "quickstart.py"


def _quickstart(built_site: Path) -> nbformat.NotebookNode:
    path = built_site / "notebooks" / "quickstart.ipynb"
    assert path.is_file(), "the quickstart is not published as notebooks/quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return notebook


def test_quickstart_notebook_installs_the_package_then_runs_the_page(built_site: Path) -> None:
    import jupytext

    install, *code = _code(_quickstart(built_site))
    assert install == install_cell(package_source(ROOT))
    page = [c.source for c in jupytext.read(QUICKSTART).cells if c.cell_type == "code"]
    assert code == page
    text = "\n".join(page)
    for used in ("TASKS[\"copy\"]", "train_until", "generate(", "attention_maps", "plot_attention"):
        assert used in text, f"the quickstart no longer uses {used}"


def test_quickstart_page_links_to_colab_and_to_its_notebook(built_site: Path) -> None:
    html = (built_site / "notebooks" / "quickstart" / "index.html").read_text(encoding="utf-8")
    assert f'href="{colab_url("quickstart.ipynb")}"' in html
    assert 'href="../quickstart.ipynb"' in html  # notebooks/quickstart/ -> notebooks/
    assert "Traceback" not in html


@pytest.mark.slow
def test_quickstart_notebook_runs_end_to_end_outside_the_repository(
    built_site: Path, installed_package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from nbclient import NotebookClient

    notebook = _quickstart(built_site)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    with capsys.disabled():
        print(f"\nquickstart.ipynb: executed in {time.perf_counter() - start:.1f} s", end="")
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs)
    assert re.search(r"exact match on \d+ test sequences: (9[5-9]|100)\.\d%", printed), printed
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the attention maps
    install = next(c for c in notebook.cells if c.cell_type == "code")
    assert "".join(o.get("text", "") for o in install.outputs) == (
        f"transformer {transformer.__version__} from {installed_package}\n")
