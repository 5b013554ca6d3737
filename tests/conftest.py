"""Shared fixtures. The book is built once per test session and shared by the tests that need it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

# Small models run fastest on one thread, and a second thread only fights the other processes
# the tests start (the book build, notebook kernels): one thread for the test process and for
# every subprocess it starts, unless the caller chose otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for `book` (build-side helpers, not installed)


@dataclass(frozen=True)
class SiteBuild:
    """The result of `mkdocs build --strict` into a temporary folder."""

    site_dir: Path
    returncode: int
    output: str
    seconds: float


@pytest.fixture
def cli_error(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], str]:
    """Run ``transformer ARGV`` in-process; assert exit status 2 and exactly one error line,
    the last line of stderr, and return that line."""
    from transformer.cli import main

    def run(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and errors[0] == err.splitlines()[-1], err
        return errors[0]

    return run


COPY_SMOKE_STEPS = 200  # the copy recipe for a fraction of its steps: a few seconds


@pytest.fixture(scope="session")
def copy_smoke():
    """The copy task's recipe trained for ``COPY_SMOKE_STEPS`` steps, once per session, shared
    by tests/test_copy_task.py and tests/test_viz.py: ``(recipe, model, history)``, the model in
    eval mode. Tests must not train or modify it."""
    from transformer import Transformer
    from transformer.tasks import TASKS
    from transformer.training import Trainer, seed_everything

    copy = TASKS["copy"]
    recipe = copy.recipe(max_steps=COPY_SMOKE_STEPS)
    seed_everything(recipe.seed)
    model = Transformer(copy.model_config(recipe))
    history = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      copy.data(recipe, "train")).train()
    return recipe, model.eval(), history


@pytest.fixture(scope="session")
def site_build(tmp_path_factory: pytest.TempPathFactory) -> SiteBuild:
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    return SiteBuild(site_dir, result.returncode, result.stdout + result.stderr, seconds)


@pytest.fixture(scope="session")
def built_site(site_build: SiteBuild) -> Path:
    """The folder of a successfully built site; fails (never skips) if the build failed."""
    if site_build.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{site_build.output[-6000:]}", pytrace=False)
    return site_build.site_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA: they skip cleanly on a machine without it, unless
    ``TRANSFORMER_GPU_TESTS=1`` says a GPU is expected (the GPU runner), where they must run."""
    if os.environ.get("TRANSFORMER_GPU_TESTS") == "1":
        return
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def dataset_file() -> Callable[..., Path]:
    """``dataset_file(name, file=None)``: the cached path of a registered dataset file
    (``transformer.data.datasets.fetch``, no progress bar). A file that cannot be had skips the
    test with the registry's one-line reason (where to put the file by hand), except under
    ``CI=true``, where ``.ci/run`` seeds the cache and a missing corpus fails the test."""
    from transformer.data.datasets import DatasetError, fetch

    def get(name: str, file: str | None = None) -> Path:
        try:
            return fetch(name, file, progress=False)
        except DatasetError as err:
            reason = str(err).splitlines()[0]
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)

    return get

