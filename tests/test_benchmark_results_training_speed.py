"""benchmarks/results/training_speed.json, which chapter 18's table reads, is there and well
formed: the four variants (fp32 / bf16 autocast, eager / compiled) with finite step times and
losses below the uniform guess, and how, when and where they were measured."""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "training_speed.json"


def _benchmark():
    spec = importlib.util.spec_from_file_location("bench_training_speed", ROOT / "benchmarks" /
                                                  "training_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"run `python benchmarks/training_speed.py` to write {RESULTS}"
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_results_say_how_when_and_where_they_were_made(results: dict) -> None:
    assert results["command"].startswith("python benchmarks/training_speed.py")
    assert datetime.datetime.fromisoformat(results["date"]).tzinfo is not None
    machine = results["machine"]
    assert machine["cpus"] >= 1 and machine["torch_threads"] >= 1
    assert machine["load_average_1min_at_start"] >= 0
    assert results["torch"].split(".")[0].isdigit()
    settings = results["settings"]
    assert settings["steps"] > settings["skip"] + 50 and settings["batch"] >= 1


def test_results_hold_every_variant_with_its_switches(results: dict) -> None:
    bench = _benchmark()
    assert list(results["figures"]) == list(bench.VARIANTS)
    for name, figure in results["figures"].items():
        assert figure["switches"] == bench.VARIANTS[name]
    assert results["reference"] == bench.REFERENCE


def test_every_figure_is_finite_and_the_losses_fell(results: dict) -> None:
    uniform = math.log(results["settings"]["vocab_size"])
    reference = results["figures"][results["reference"]]["median_ms_per_step"]
    for name, figure in results["figures"].items():
        assert figure["median_ms_per_step"] > 0 and figure["first_steps_s"] > 0, name
        assert figure["speedup_vs_reference"] == pytest.approx(
            reference / figure["median_ms_per_step"], rel=1e-2)
        for loss in ("train_loss_last_50", "valid_loss"):
            assert 0 < figure[loss] < uniform, (name, loss)  # learned something
        assert figure["train_loss_last_50"] < figure["first_loss"]
        assert figure["train_loss_last_50_std"] >= 0
