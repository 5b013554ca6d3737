"""benchmarks/results/layer_norm.json (written by benchmarks/layer_norm.py) is present, complete
and self-consistent: chapter 16 draws its two loss curves."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "layer_norm.json"


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"{RESULTS} is missing: run python benchmarks/layer_norm.py"
    return json.loads(RESULTS.read_text(encoding="utf-8"),
                      parse_constant=lambda c: pytest.fail(f"non-finite number {c} in JSON"))


def test_run_is_described(results) -> None:
    assert results["benchmark"] == "layer_norm"
    assert results["command"].startswith("python benchmarks/layer_norm.py")
    datetime.datetime.fromisoformat(results["date"])
    assert results["machine"]["cpus"] >= 1 and results["threads"] >= 1
    assert isinstance(results["torch_version"], str) and results["torch_version"]
    for when in ("start", "end"):
        assert len(results["load_average"][when]) == 3


def test_both_placements_ran_the_same_steps(results) -> None:
    runs = results["runs"]
    assert set(runs) == {"post_ln", "pre_ln"}
    assert runs["post_ln"]["norm_first"] is False and runs["pre_ln"]["norm_first"] is True
    assert runs["post_ln"]["steps"] == runs["pre_ln"]["steps"] >= 1
    for run in runs.values():
        steps = [p["step"] for p in run["curve"]]
        assert steps == sorted(steps) and steps[-1] == run["steps"]
        assert all(math.isfinite(p["loss"]) and p["loss"] > 0 for p in run["curve"])
        assert 0 <= run["valid_bleu"] <= 100
        assert len(run["examples"]) == 3
        assert all(e["source"] and e["reference"] for e in run["examples"])
