"""What a reader gets from ``pip install``: the copy-alone files really stand alone; the sdist and
the wheel pass ``twine check``, the wheel holds the package and nothing else, installs into a
fresh virtual environment and runs from there; the version has one source; the release workflow
builds, checks, smoke-tests and publishes without a stored secret.

These tests run under any interpreter: a virtual environment (CI's, a developer's) or a system
Python. A fresh environment is made without system site packages and sees the current
interpreter's site-packages (torch) through a ``.pth`` file, never the repository.
"""

import ast
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

import transformer

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
    # Drop every sys.path entry that could give the package (the repository, the cwd): the
    # interpreter's own site-packages stay, wherever its environment lies (inside the clone too).
    code = (
        "import os, sys\n"
        f"sys.path[:] = [{str(tmp_path)!r}] + [p for p in sys.path if p and "
        "not os.path.exists(os.path.join(p, 'transformer', '__init__.py'))]\n"
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


def _clean_copy(out: Path) -> Path:
    """A copy of the working tree without what .gitignore ignores, so no build/, *.egg-info or
    virtual environment lands in the repository or in the distributions."""
    src = out / "src"
    ignored = [line.strip().rstrip("/") for line in
               (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith(("#", "!"))]
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", *ignored))
    return src


def _build(out: Path) -> tuple[Path, Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist (as PyPI users get
    them); returns (sdist, wheel)."""
    run = subprocess.run([sys.executable, "-m", "build", "--no-isolation",
                          "--outdir", str(out / "dist"), str(_clean_copy(out))],
                         capture_output=True, text=True, timeout=300, env=_clean_env())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (sdist,) = (out / "dist").glob("*.tar.gz")
    (wheel,) = (out / "dist").glob("*.whl")
    return sdist, wheel


def _site_dirs() -> list[str]:
    """Where the current interpreter finds its installed packages (torch among them)."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if Path(d).is_dir()]


def fresh_venv(where: Path) -> Path:
    """A new virtual environment that sees the current interpreter's installed packages (torch,
    which is not reinstalled) but not the repository; returns its ``python``.

    ``sys.executable`` may itself be a venv, whose base interpreter has no torch, so the venv is
    made without ``--system-site-packages`` and a ``.pth`` file lists the current site
    directories instead. Entries of a ``.pth`` file are added as plain paths: the ``.pth`` files
    inside them (an editable install's finder) are not run, so the package is not importable
    until a test installs it.
    """
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300,
                   env=_clean_env(), capture_output=True)
    python = where / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, env=_clean_env(),
                             timeout=60).stdout.strip()
    (Path(purelib) / "outer-site-packages.pth").write_text(
        "".join(f"{d}\n" for d in _site_dirs()), encoding="utf-8")
    return python


def _run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(),
                          capture_output=True, text=True, timeout=300)


def test_fresh_venv_imports_torch_but_not_the_package(tmp_path):
    python = fresh_venv(tmp_path / "venv")
    assert "include-system-site-packages = false" in (tmp_path / "venv" / "pyvenv.cfg").read_text()
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = ("import sys, torch\n"
            "print(sys.prefix)\n"
            "try:\n    import transformer\nexcept ImportError:\n    print('isolated')\n"
            "else:\n    print('importable from', transformer.__file__)\n")
    run = _run([python, "-c", code], work)
    assert run.returncode == 0, run.stderr
    prefix, verdict = run.stdout.splitlines()
    assert Path(prefix) == tmp_path / "venv"
    assert verdict == "isolated"


@pytest.mark.slow
def test_sdist_and_wheel_pass_twine_check_and_the_wheel_runs_from_a_fresh_venv(tmp_path):
    sdist, wheel = _build(tmp_path)
    check = _run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2, check.stdout

    version = transformer.__version__
    assert sdist.name == f"executable_transformer-{version}.tar.gz"
    assert wheel.name == f"executable_transformer-{version}-py3-none-any.whl"

    with tarfile.open(sdist) as tar:
        sdist_names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO",
                   "transformer/__init__.py", "transformer/__main__.py"):
        assert needed in sdist_names, needed
    assert not [n for n in sdist_names if n.startswith(("docs/", "benchmarks/", "book/", ".ci/"))]

    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"transformer"}, sorted(top)
    assert len(dist_info) == 1
    dist_info = dist_info.pop()
    for module in ("__init__", "__main__", "attention", "embeddings", "masks", "layers", "model",
                   "interop", "cli"):
        assert f"transformer/{module}.py" in names
    assert not [n for n in names if n.startswith(("docs/", "tests/", "benchmarks/", "book/"))]
    assert f"{dist_info}/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "transformer = transformer.cli:main" in entry_points
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    assert "\nLicense-Expression: MIT\n" in metadata

    venv = tmp_path / "venv"
    python = fresh_venv(venv)
    # --ignore-installed: the outer environment's editable install must not count as installed
    install = _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                    "--quiet", wheel], tmp_path)
    assert install.returncode == 0, install.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    code = ("import importlib.metadata, transformer\n"
            "from transformer import Transformer, TransformerConfig\n"
            "print(transformer.__file__)\n"
            "print(Transformer(TransformerConfig.tiny()).config.d_model)\n"
            "print(transformer.__version__)\n"
            "print(importlib.metadata.version('executable-transformer'))\n")
    run = _run([python, "-c", code], work)
    assert run.returncode == 0, run.stderr
    where, d_model, imported_version, installed_version = run.stdout.split()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not the repository
    assert not Path(where).is_relative_to(REPO)
    assert d_model == "32"
    assert imported_version == installed_version == version

    info = _run([venv / "bin" / "transformer", "info", "--preset", "tiny"], work)
    assert info.returncode == 0, info.stderr
    assert "total" in info.stdout
    module_help = _run([python, "-m", "transformer", "--help"], work)
    script_help = _run([venv / "bin" / "transformer", "--help"], work)
    assert module_help.returncode == script_help.returncode == 0, module_help.stderr
    assert module_help.stdout == script_help.stdout
    assert "usage: transformer" in module_help.stdout


def test_version_has_one_source_read_by_setuptools():
    from setuptools.config.pyprojecttoml import read_configuration

    raw = read_configuration(REPO / "pyproject.toml", expand=False)
    assert "version" not in raw["project"], "pyproject.toml must not repeat the version"
    assert "version" in raw["project"]["dynamic"]
    assert raw["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "transformer.__version__"}
    expanded = read_configuration(REPO / "pyproject.toml", expand=True)
    assert expanded["project"]["version"] == transformer.__version__


def test_changelog_starts_with_the_package_version():
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "keepachangelog.com" in changelog
    versions = re.findall(r"^## \[(\d[^\]]*)\]", changelog, flags=re.MULTILINE)
    assert versions, "CHANGELOG.md has no version heading"
    assert versions[0] == transformer.__version__


def test_metadata_names_the_licence_urls_and_pythons():
    from setuptools.config.pyprojecttoml import read_configuration

    project = read_configuration(REPO / "pyproject.toml", expand=True)["project"]
    assert project["license"] == "MIT"
    licence = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License")
    assert "The Executable Transformer authors" in licence
    assert set(project["urls"]) >= {"Homepage", "Documentation", "Source", "Issues"}
    assert project["requires-python"] == ">=3.10"
    pythons = [c.rsplit(" ", 1)[1] for c in project["classifiers"]
               if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert pythons == ["3.10", "3.11", "3.12", "3.13"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # PEP 639


def test_python_dash_m_transformer_is_the_console_script(tmp_path, capsys):
    from transformer.cli import main

    assert main(["info", "--preset", "tiny"]) == 0
    in_process = capsys.readouterr().out
    env = {**_clean_env(), "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "transformer", "info", "--preset", "tiny"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == in_process
    bad = subprocess.run([sys.executable, "-m", "transformer", "info", "--preset", "huge"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1].startswith("transformer info: error:")


def _release_workflow() -> dict:
    workflow = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text(encoding="utf-8"))
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on:` as True
    return workflow


def _steps_text(job: dict) -> str:
    return "\n".join(f"{s.get('uses', '')} {s.get('run', '')} {s.get('with', '')}"
                     for s in job["steps"])


def test_release_workflow_builds_checks_smoke_tests_then_publishes_on_version_tags():
    workflow = _release_workflow()
    assert workflow["on"] == {"push": {"tags": ["v*"]}}
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    steps = _steps_text(build)
    for needed in ("python -m build", "twine check", "python -m venv", "pip install dist/*.whl",
                   "import transformer", "transformer info", "python -m transformer --help",
                   "CHANGELOG.md", 'test "$GITHUB_REF_NAME" = "v$version"',
                   "actions/upload-artifact"):
        assert needed in steps, f"release build job lacks {needed!r}"
    order = [steps.index(s) for s in ("python -m build", "twine check", "pip install dist/",
                                      "transformer info", "actions/upload-artifact")]
    assert order == sorted(order), "build, check, install, smoke test, then upload"

    assert publish["needs"] == "build"
    assert publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    uses = [s.get("uses", "") for s in publish["steps"]]
    assert "actions/download-artifact@v4" in uses
    assert uses[-1].startswith("pypa/gh-action-pypi-publish@")
    assert not publish["steps"][-1].get("with"), "trusted publishing takes no password"


def test_release_workflow_references_no_secret_or_token():
    text = (REPO / ".github/workflows/release.yml").read_text(encoding="utf-8")
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # comments aside
    for word in ("secrets.", "password", "api-token", "api_token", "GITHUB_TOKEN", "TWINE_"):
        assert word.lower() not in code.lower(), word
    assert _release_workflow()["permissions"] == {"contents": "read"}


def test_extras_named_in_the_readme_and_the_book_exist():
    from setuptools.config.pyprojecttoml import read_configuration

    extras = set(read_configuration(REPO / "pyproject.toml")["project"]["optional-dependencies"])
    pattern = re.compile(r'(?:executable-transformer|"\.|`)\[([a-z][a-z0-9,-]*)\]')
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        named = {e for group in pattern.findall(path.read_text(encoding="utf-8"))
                 for e in group.split(",")}
        assert named <= extras, f"{path.name} names missing extras {sorted(named - extras)}"
    index = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
    assert {e for g in pattern.findall(index) for e in g.split(",")} == extras
