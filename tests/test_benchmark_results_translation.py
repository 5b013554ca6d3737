"""benchmarks/results/translation.json and translation_fp32.json (two runs of
benchmarks/translation.py, the second on a CPU without bf16) are present, complete and
self-consistent: the book's translation chapter reads its numbers from there, and its
cross-attention maps from the second."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest
import sacrebleu

FOLDER = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
RUNS = ["translation.json", "translation_fp32.json"]
WITH_ALIGNMENTS = "translation_fp32.json"  # the run chapter 16 draws attention maps from


def _read(name: str) -> dict:
    path = FOLDER / name
    assert path.is_file(), f"{path} is missing: run python benchmarks/translation.py"
    return json.loads(path.read_text(encoding="utf-8"),
                      parse_constant=lambda c: pytest.fail(f"non-finite number {c} in JSON"))


@pytest.fixture(scope="module", params=RUNS)
def results(request) -> dict:
    return _read(request.param)


def _score(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) and 0 <= value <= 100


def test_run_is_described(results) -> None:
    assert results["benchmark"] == "translation"
    assert results["command"].startswith("python benchmarks/translation.py")
    datetime.datetime.fromisoformat(results["date"])
    machine = results["machine"]
    assert isinstance(machine["processor"], str) and machine["cpus"] >= 1
    assert isinstance(results["torch_version"], str) and results["torch_version"]
    assert isinstance(results["threads"], int) and results["threads"] >= 1
    for when in ("start", "end"):
        load = results["load_average"][when]
        assert len(load) == 3 and all(isinstance(x, float) and x >= 0 for x in load)
    assert results["precision"]["used"] in ("fp32", "bf16")


def test_the_whole_budget_was_trained_and_the_whole_test_set_scored(results) -> None:
    budget = results["budget"]
    assert budget["train_seconds"] >= budget["minutes"] * 60
    assert results["data"]["full_test"] is True, "a --test-size development run is not a result"
    assert results["data"]["test"]["kept"] == results["data"]["test_scored"] == 1000
    assert results["data"]["train"]["pairs"] == 29_000
    assert results["training"]["steps"] >= 1 and results["training"]["target_tokens"] > 0


def test_the_curve_rises_in_training_time_and_ends_at_the_last_step(results) -> None:
    curve = results["curve"]
    assert len(curve) >= 2
    minutes = [p["train_minutes"] for p in curve]
    assert minutes == sorted(minutes)
    assert [p["step"] for p in curve] == sorted(p["step"] for p in curve)
    assert curve[-1]["step"] == results["training"]["steps"]
    assert all(_score(p["valid_bleu"]) and _score(p["valid_chrf"]) for p in curve)


def test_greedy_and_beam_scores_carry_sacrebleu_signatures(results) -> None:
    for name, beam in (("greedy", 1), ("beam", 4)):
        table = results["test"][name]
        assert table["beam_size"] == beam
        for key in ("bleu", "chrf", "bleu_lowercase_13a"):
            assert _score(table[key]), (name, key)
        assert table["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
        assert table["bleu_signature"].endswith(f"version:{sacrebleu.__version__}") or \
            "version:" in table["bleu_signature"]
        assert "case:lc" in table["bleu_lowercase_signature"]
        assert table["chrf_signature"].startswith("nrefs:1|case:mixed")


def test_averaging_and_goal_are_consistent(results) -> None:
    averaging = results["averaging"]
    assert 1 <= averaging["snapshots"] <= 5
    assert averaging["used"] == max(averaging["valid_bleu"], key=averaging["valid_bleu"].get)
    best = max(results["test"][name]["bleu"] for name in ("greedy", "beam"))
    goal = results["goal"]
    assert goal["reached"] is (best >= goal["bleu"] and results["budget"]["minutes"]
                               <= goal["minutes"])


def test_examples_hold_sources_references_and_both_outputs(results) -> None:
    kinds = [e["kind"] for e in results["examples"]]
    assert kinds.count("good") >= 1 and kinds.count("bad") >= 1
    for example in results["examples"]:
        assert example["source"] and example["reference"]
        assert isinstance(example["greedy"], str) and isinstance(example["beam"], str)
        assert example["chrf"] == pytest.approx(
            sacrebleu.sentence_chrf(example["beam"], [example["reference"]]).score)


def test_alignments_are_row_stochastic_maps_labelled_by_their_tokens() -> None:
    results = _read(WITH_ALIGNMENTS)
    recipe = results["recipe"]
    examples = results["alignments"]["examples"]
    assert len(examples) >= 2
    fresh = {e["source"]: e["beam"] for e in results["fresh_examples"]}
    for example in examples:
        assert example["source"] and isinstance(example["target"], str)
        if example["source"] in fresh:  # the same beam output the results report
            assert example["target"] == fresh[example["source"]]
        rows, columns = len(example["target_tokens"]), len(example["source_tokens"])
        assert example["target_tokens"][-1] == "<eos>" and columns >= 1
        for key, panels in (("last_layer", recipe["n_heads"]), ("head_mean", recipe["n_layers"])):
            maps = example[key]
            assert len(maps) == panels, key
            for panel in maps:
                assert len(panel) == rows and all(len(row) == columns for row in panel), key
                for row in panel:
                    assert all(0 <= w <= 1 for w in row)
                    assert sum(row) == pytest.approx(1, abs=columns * 1e-4)  # 4 decimals
