"""benchmarks/results/shakespeare.json (written by benchmarks/shakespeare.py) is present,
complete and self-consistent: chapter 12 reads its numbers from there."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "shakespeare.json"


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"{RESULTS} is missing: run python benchmarks/shakespeare.py"
    return json.loads(RESULTS.read_text(encoding="utf-8"),
                      parse_constant=lambda c: pytest.fail(f"non-finite number {c} in JSON"))


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def test_run_is_described(results) -> None:
    assert results["benchmark"] == "shakespeare"
    assert results["command"].startswith("python benchmarks/shakespeare.py")
    datetime.datetime.fromisoformat(results["date"])
    assert isinstance(results["machine"]["cpus"], int) and results["machine"]["cpus"] >= 1
    assert isinstance(results["torch_version"], str) and results["torch_version"]
    assert isinstance(results["threads"], int) and results["threads"] >= 1
    for when in ("start", "end"):
        assert len(results["load_average"][when]) == 3


def test_it_is_a_full_run_of_both_implementations(results) -> None:
    assert results["complete"] is True
    names = [r["name"] for r in results["runs"]]
    assert "nanoGPT" in names and any(r["implementation"] == "ours" for r in results["runs"])
    for run in results["runs"]:
        assert run["iters"] == 2000
        for key in ("val_loss", "median_ms_per_iter", "tokens_per_s", "wall_s"):
            assert _positive(run[key]), (run["name"], key)
        assert run["full_val_loss"] is None or _positive(run["full_val_loss"])
        assert run["tokens_per_s"] == pytest.approx(12 * 64 / run["median_ms_per_iter"] * 1000)
        steps = [p["step"] for p in run["curve"]]
        assert steps == sorted(steps) and steps[-1] == 2000
        assert run["curve"][-1]["val_loss"] == run["val_loss"]
    nanogpt = next(r for r in results["runs"] if r["name"] == "nanoGPT")
    assert "--compile=False" in nanogpt["command"] and "--max_iters=2000" in nanogpt["command"]


def test_ratios_are_those_of_the_runs(results) -> None:
    runs = {r["name"]: r for r in results["runs"]}
    eager = runs["nanoGPT"]["median_ms_per_iter"]
    for name, ratio in results["ratios"].items():
        assert ratio["vs_nanogpt_eager"] == pytest.approx(runs[name]["median_ms_per_iter"] / eager)


def test_samples_continue_the_prompt(results) -> None:
    assert {s["strategy"] for s in results["samples"]} >= {"greedy", "temperature 0.8"}
    for s in results["samples"]:
        assert s["text"].startswith(s["prompt"]) and len(s["text"]) == len(s["prompt"]) + 200
