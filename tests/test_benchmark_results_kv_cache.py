"""benchmarks/results/kv_cache.json, which chapter 18's table reads, is there and well formed:
the five decoders of the benchmark, each with finite timings and its ratio to the eager KV
cache, the same tokens from all, and how, when and where it was measured."""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "kv_cache.json"


def _benchmark():
    spec = importlib.util.spec_from_file_location("bench_kv_cache", ROOT / "benchmarks" /
                                                  "kv_cache.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"run `python benchmarks/kv_cache.py` to write {RESULTS}"
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_results_say_how_when_and_where_they_were_made(results: dict) -> None:
    assert results["command"].startswith("python benchmarks/kv_cache.py")
    assert datetime.datetime.fromisoformat(results["date"]).tzinfo is not None
    machine = results["machine"]
    assert machine["cpus"] >= 1 and machine["torch_threads"] >= 1
    assert machine["load_average_1min_at_start"] >= 0
    assert machine["load_average_1min_at_end"] >= 0
    assert results["torch"].split(".")[0].isdigit()
    settings = results["settings"]
    assert settings["new_tokens"] >= 1 and settings["rounds"] >= 1
    assert settings["parameters"] > 0


def test_results_hold_every_decoder_and_they_agreed(results: dict) -> None:
    bench = _benchmark()
    assert list(results["figures"]) == list(bench.VARIANTS)
    assert results["reference"] == bench.REFERENCE
    assert results["same_tokens"] is True
    assert set(results["compile_s"]) == {n for n in bench.VARIANTS if "compiled" in n}
    assert all(seconds > 0 for seconds in results["compile_s"].values())


def test_every_figure_is_finite_and_its_ratio_is_consistent(results: dict) -> None:
    figures = results["figures"]
    reference = figures[results["reference"]]["ms_per_token"]
    for name, figure in figures.items():
        ms = figure["ms_per_token"]
        assert math.isfinite(ms) and ms > 0, name
        assert len(figure["ms_per_token_each_round"]) == results["settings"]["rounds"]
        assert min(figure["ms_per_token_each_round"]) <= ms <= \
            max(figure["ms_per_token_each_round"])  # the median of the rounds
        assert figure["speedup_vs_reference"] == pytest.approx(reference / ms, rel=1e-2)
    assert figures[results["reference"]]["speedup_vs_reference"] == 1.0
