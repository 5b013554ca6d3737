"""benchmarks/results/embedding_init.json, which chapter 1's verdict reads, is there and well
formed: every initialization of the benchmark, each seed, finite figures in range, and how it
was made."""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "embedding_init.json"


def _benchmark():
    spec = importlib.util.spec_from_file_location("bench_embedding_init",
                                                  ROOT / "benchmarks" / "embedding_init.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"run `python benchmarks/embedding_init.py` to write {RESULTS}"
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_results_say_how_when_and_where_they_were_made(results: dict) -> None:
    assert results["command"].startswith("python benchmarks/embedding_init.py")
    assert datetime.datetime.fromisoformat(results["date"]).tzinfo is not None
    machine = results["machine"]
    assert machine["cpus"] >= 1 and machine["torch_threads"] >= 1
    assert machine["load_average_1min_at_start"] >= 0
    assert results["torch"].split(".")[0].isdigit()
    settings = results["settings"]
    assert settings["max_steps"] >= 1 and settings["eval_every"] >= 1 and settings["seeds"]


def test_results_hold_every_initialization_and_every_seed(results: dict) -> None:
    assert list(results["figures"]) == list(_benchmark().INITS)
    for figure in results["figures"].values():
        assert [r["seed"] for r in figure["runs"]] == results["settings"]["seeds"]


def test_every_figure_is_finite_and_in_range(results: dict) -> None:
    settings = results["settings"]
    ratios = {"balanced": 1.0, "position-dominated": 1 / settings["ratio"]}
    for name, figure in results["figures"].items():
        reached = [r["steps_to_100"] for r in figure["runs"] if r["steps_to_100"] is not None]
        assert figure["seeds_reaching_100"] == len(reached)
        if reached:
            assert min(reached) <= figure["median_steps_to_100"] <= max(reached)
        for run in figure["runs"]:
            if name in ratios:  # the rescaled starts hit their target ratio
                assert math.isclose(run["token_to_position_ratio"], ratios[name], rel_tol=1e-4)
            steps = run["steps_to_100"]
            if steps is not None:
                assert run["valid_exact_match"] == 1.0 and 1 <= steps <= settings["max_steps"]
                assert steps % settings["eval_every"] == 0 or steps == settings["max_steps"]
            else:
                assert 0.0 <= run["valid_exact_match"] < 1.0
            assert math.isfinite(run["loss_at_step"]) and run["loss_at_step"] > 0
            assert run["wall_s"] > 0 and run["cpu_s"] > 0
        mean = sum(r["loss_at_step"] for r in figure["runs"]) / len(figure["runs"])
        assert math.isclose(figure["mean_loss_at_step"], mean, rel_tol=1e-9)


def test_the_rescaling_sets_the_ratio_it_names() -> None:
    import torch

    from transformer import Transformer
    from transformer.tasks import TASKS

    bench = _benchmark()
    torch.manual_seed(0)
    copy = TASKS["copy"]
    model = Transformer(copy.model_config(copy.recipe()))
    before = bench.token_to_position_ratio(model)
    bench.rescale(model, "xavier", 4.3)
    assert bench.token_to_position_ratio(model) == before  # the default is left alone
    bench.rescale(model, "position-dominated", 4.3)
    assert math.isclose(bench.token_to_position_ratio(model), 1 / 4.3, rel_tol=1e-5)
