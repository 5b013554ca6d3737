"""What a reader gets from ``pip install``: the copy-alone files really stand alone, and the
wheel holds the package and nothing else, installs, and imports from where it was installed."""

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STANDALONE = ["attention.py", "embeddings.py", "masks.py"]


def _clean_env() -> dict[str, str]:
    """The environment minus anything that could put the repository on ``sys.path``."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import from {node.module!r}"
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", STANDALONE)
def test_copy_alone_files_import_only_torch_and_the_standard_library(name):
    imports = _top_level_imports(REPO / "transformer" / name)
    foreign = {m for m in imports if m != "torch" and m not in sys.stdlib_module_names}
    assert "torch" in imports
    assert not foreign, f"{name} imports {sorted(foreign)}"


@pytest.mark.parametrize("name", STANDALONE)
def test_copy_alone_files_import_when_copied_into_an_empty_folder(name, tmp_path):
    shutil.copy(REPO / "transformer" / name, tmp_path / name)
    module = name.removesuffix(".py")
    code = (
        "import sys\n"
        f"sys.path[:] = [{str(tmp_path)!r}] + [p for p in sys.path if p and "
        f"not p.startswith({str(REPO)!r})]\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
        "try:\n    import transformer\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('the package is still importable: not isolated')\n"
        f"import {module}\n"
        f"assert {module}.__file__.startswith({str(tmp_path)!r}), {module}.__file__\n"
        "assert 'transformer' not in sys.modules, 'the package was imported'\n"
        f"print(sorted({module}.__all__))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith("[")


def _build_wheel(out: Path) -> Path:
    """Build from a copy of the working tree, so no build/ or *.egg-info lands in the repo."""
    src = out / "src"
    ignored = [line.strip().rstrip("/") for line in
               (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith(("#", "!"))]
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", *ignored))
    run = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                          "--outdir", str(out / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300, env=_clean_env())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (wheel,) = (out / "dist").glob("*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_holds_only_the_package_and_installs_into_a_fresh_venv(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"transformer"}, sorted(top)
    assert len(dist_info) == 1
    for module in ("__init__", "attention", "embeddings", "masks", "layers", "model", "interop",
                   "cli"):
        assert f"transformer/{module}.py" in names
    assert not [n for n in names if n.startswith(("docs/", "tests/", "benchmarks/", "book/"))]
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/entry_points.txt").decode()
    assert "transformer = transformer.cli:main" in entry_points

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                              "--force-reinstall", "--quiet", str(wheel)],
                             capture_output=True, text=True, timeout=300, env=_clean_env())
    assert install.returncode == 0, install.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    code = ("import sys, transformer\n"
            "print(transformer.__file__)\n"
            "from transformer import Transformer, TransformerConfig\n"
            "print(Transformer(TransformerConfig.tiny()).config.d_model)\n")
    run = subprocess.run([str(python), "-c", code], cwd=work, env=_clean_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    where, d_model = run.stdout.split()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not the repository
    assert not Path(where).is_relative_to(REPO)
    assert d_model == "32"

    info = subprocess.run([str(venv / "bin" / "transformer"), "info", "--preset", "tiny"],
                          cwd=work, env=_clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert info.returncode == 0, info.stderr
    assert "total" in info.stdout
