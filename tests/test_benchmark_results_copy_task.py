"""benchmarks/results/copy_task.json, which chapter 10 reads, is there and well formed: one run
per seed, finite figures in range, the recipe it timed, and how it was made."""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics
from pathlib import Path

import pytest

from transformer.tasks import SyntheticRecipe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "copy_task.json"


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"run `python benchmarks/copy_task.py` to write {RESULTS}"
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_results_say_how_when_and_where_they_were_made(results: dict) -> None:
    assert results["command"].startswith("python benchmarks/copy_task.py")
    assert datetime.datetime.fromisoformat(results["date"]).tzinfo is not None
    machine = results["machine"]
    assert machine["cpus"] >= 1 and machine["torch_threads"] >= 1
    assert machine["load_average_1min_at_start"] >= 0
    assert results["torch"].split(".")[0].isdigit()


def test_results_timed_the_recipe_as_it_is(results: dict) -> None:
    recipe = dataclasses.asdict(SyntheticRecipe(eval_size=results["settings"]["eval_size"]))
    assert results["settings"]["recipe"] == recipe


def test_every_run_is_in_range(results: dict) -> None:
    settings, figures = results["settings"], results["figures"]
    runs = figures["runs"]
    assert [r["seed"] for r in runs] == settings["seeds"]
    walls = []
    for run in runs:
        steps = run["steps_to_100"]
        if steps is not None:
            assert run["exact_match"] == 1.0 and 1 <= steps <= settings["max_steps"]
            assert steps % settings["eval_every"] == 0 or steps == settings["max_steps"]
            walls.append(run["wall_s"])
        else:
            assert 0.0 <= run["exact_match"] < 1.0
        assert run["wall_s"] > 0 and run["cpu_s"] > 0
        reference = run["paper_schedule_exact_match"]
        assert reference is None or 0.0 <= reference <= 1.0
    assert figures["seeds_reaching_100"] == len(walls)
    assert figures["median_wall_s_to_100"] == (statistics.median(walls) if walls else None)
