"""benchmarks/results/variants.json, which chapter 15's table reads, is there and well formed:
every variant of the benchmark, each with finite figures in range, and how it was made."""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
from pathlib import Path

import pytest

from transformer import TransformerConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "variants.json"


def _benchmark():
    spec = importlib.util.spec_from_file_location("bench_variants", ROOT / "benchmarks" /
                                                  "variants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"run `python benchmarks/variants.py` to write {RESULTS}"
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_results_say_how_when_and_where_they_were_made(results: dict) -> None:
    assert results["command"].startswith("python benchmarks/variants.py")
    date = datetime.datetime.fromisoformat(results["date"])
    assert date.tzinfo is not None
    machine = results["machine"]
    assert machine["cpus"] >= 1 and machine["torch_threads"] >= 1
    assert machine["load_average_1min_at_start"] >= 0
    assert results["torch"].split(".")[0].isdigit()
    settings = results["settings"]
    assert settings["lm_steps"] >= 1 and settings["copy_max_steps"] >= 1


def test_results_hold_every_variant_of_the_benchmark_with_its_switches(results: dict) -> None:
    variants = _benchmark().VARIANTS
    assert list(results["figures"]) == list(variants)
    for name, figure in results["figures"].items():
        assert figure["switches"] == variants[name]
        TransformerConfig.tiny(**figure["switches"])  # still a valid configuration
    assert results["figures"]["paper"]["switches"] == {}


def test_every_figure_is_finite_and_in_range(results: dict) -> None:
    settings = results["settings"]
    for name, figure in results["figures"].items():
        copy, lm = figure["copy"], figure["shakespeare"]
        for share in ("valid_exact_match", "test_exact_match"):
            assert 0.0 <= copy[share] <= 1.0, name
        steps = copy["steps_to_100"]
        if steps is not None:  # reached 100 % on validation, at a check
            assert copy["valid_exact_match"] == 1.0
            assert 1 <= steps <= settings["copy_max_steps"]
            assert steps % settings["copy_eval_every"] == 0 or steps == settings["copy_max_steps"]
        else:
            assert copy["valid_exact_match"] < 1.0
        assert 0.0 < lm["valid_loss"] < math.log(settings["lm_vocab_size"]), name  # < uniform
        assert math.isfinite(lm["train_loss"])
        for part in (copy, lm):
            assert part["parameters"] > 0 and part["wall_s"] > 0 and part["cpu_s"] > 0
