"""benchmarks/results/squad.json (written by benchmarks/squad.py) is present, complete and
self-consistent: the book reads its numbers from there."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

from transformer.tasks.squad import exact_match_score, f1_score, max_over_ground_truths

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "squad.json"
MODELS = ("sliding_window", "extractive", "generative")


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"{RESULTS} is missing: run python benchmarks/squad.py"
    return json.loads(RESULTS.read_text(encoding="utf-8"),
                      parse_constant=lambda c: pytest.fail(f"non-finite number {c} in JSON"))


def _percent(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) and 0 <= value <= 100


def test_run_is_described(results) -> None:
    assert results["benchmark"] == "squad"
    assert results["command"].startswith("python benchmarks/squad.py")
    datetime.datetime.fromisoformat(results["date"])
    machine = results["machine"]
    assert isinstance(machine["platform"], str) and isinstance(machine["processor"], str)
    assert isinstance(machine["cpus"], int) and machine["cpus"] >= 1
    assert isinstance(results["torch_version"], str) and results["torch_version"]
    assert isinstance(results["threads"], int) and results["threads"] >= 1
    for when in ("start", "end"):
        load = results["load_average"][when]
        assert len(load) == 3 and all(isinstance(x, float) and x >= 0 for x in load)


def test_budget_is_split_between_the_two_models_and_spent(results) -> None:
    budget, figures = results["budget"], results["figures"]
    seconds = budget["seconds"]
    assert seconds["extractive"] == pytest.approx(budget["minutes"] * 60
                                                  * budget["extractive_share"])
    assert seconds["extractive"] + seconds["generative"] == pytest.approx(budget["minutes"] * 60)
    for name in ("extractive", "generative"):
        assert figures[name]["train_seconds"] >= seconds[name] - 0.1
        assert figures[name]["steps"] >= 1
        assert figures[name]["final_loss"] < figures[name]["first_loss"]


def test_split_is_named_and_disjoint_by_article(results) -> None:
    split = results["split"]
    assert split["kind"] in ("official", "dev-by-article")
    if split["kind"] == "dev-by-article":
        assert "train-v1.1.json is not cached" in split["note"]
        assert "split by article" in split["note"]
        assert not set(split["train_titles"]) & set(split["held_out_titles"])
        assert len(split["held_out_titles"]) == round(
            split["held_out_fraction"] * (len(split["train_titles"])
                                          + len(split["held_out_titles"])))
    assert results["data"]["full_eval"] is True, "an --eval-questions run is not a result"


def test_every_model_is_scored_on_the_same_questions(results) -> None:
    count = results["data"]["eval_questions"]
    assert set(MODELS) <= set(results["figures"])
    for name in results["figures"]:  # the three, and the learned-positions span model if run
        figures = results["figures"][name]
        assert figures["count"] == count and figures["missing"] == 0, name
        assert _percent(figures["exact_match"]) and _percent(figures["f1"]), name


def test_headline_says_whether_the_extractive_model_beats_the_baseline(results) -> None:
    figures = results["figures"]
    beats = figures["extractive"]["f1"] > figures["sliding_window"]["f1"]
    assert results["extractive_beats_baseline"] is beats
    assert results["logistic_regression_f1"] == 51.0


def test_example_predictions_are_scored_as_the_official_script_does(results) -> None:
    assert len(results["examples"]) >= 5
    for row in results["examples"]:
        assert set(row["predictions"]) == set(MODELS)
        for p in row["predictions"].values():
            assert p["f1"] == pytest.approx(
                max_over_ground_truths(f1_score, p["answer"], row["gold"]))
            assert p["exact_match"] == max_over_ground_truths(exact_match_score,
                                                              p["answer"], row["gold"])
