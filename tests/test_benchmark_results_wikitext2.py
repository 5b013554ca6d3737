"""benchmarks/results/wikitext2.json (written by benchmarks/wikitext2.py) is present, complete and
self-consistent: the book reads its numbers from there."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "wikitext2.json"


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.is_file(), f"{RESULTS} is missing: run python benchmarks/wikitext2.py"
    return json.loads(RESULTS.read_text(encoding="utf-8"),
                      parse_constant=lambda c: pytest.fail(f"non-finite number {c} in JSON"))


def _positive_finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def test_run_is_described(results) -> None:
    assert results["benchmark"] == "wikitext2"
    assert results["command"].startswith("python benchmarks/wikitext2.py")
    datetime.datetime.fromisoformat(results["date"])
    machine = results["machine"]
    assert isinstance(machine["platform"], str) and isinstance(machine["processor"], str)
    assert isinstance(machine["cpus"], int) and machine["cpus"] >= 1
    assert isinstance(results["torch_version"], str) and results["torch_version"]
    assert isinstance(results["threads"], int) and results["threads"] >= 1
    for when in ("start", "end"):
        load = results["load_average"][when]
        assert len(load) == 3 and all(isinstance(x, float) and x >= 0 for x in load)


def test_budget_is_split_between_the_two_transformers(results) -> None:
    budget = results["budget"]
    assert _positive_finite(budget["minutes"])
    shares = budget["seconds_per_transformer"]
    assert set(shares) == set(results["transformers"]) == {"char", "bpe"}
    assert sum(shares.values()) == pytest.approx(budget["minutes"] * 60)
    for name, figures in results["transformers"].items():  # trained for its whole share
        assert figures["train_seconds"] >= shares[name] - 0.1
        assert figures["steps"] >= 1 and figures["train_tokens"] >= figures["steps"]


def test_training_file_is_named_and_a_missing_train_split_is_said(results) -> None:
    data = results["data"]
    assert data["eval_file"] == "wiki.test.raw"
    assert data["train_file"] in ("wiki.train.raw", "wiki.valid.raw")
    if data["train_file"] == "wiki.valid.raw":
        assert "wiki.train.raw is not cached" in data["note"]
        assert "trained on wiki.valid.raw" in data["note"]
    assert data["full_test"] is True, "a --eval-chars development run is not a result"
    assert data["train_characters"] > 1_000_000 and data["test_characters"] > 1_000_000


def test_ngram_figures_are_consistent(results) -> None:
    ngram, chars = results["ngram"], results["data"]["test_characters"]
    assert ngram["orders"]
    for figures in ngram["orders"]:
        assert figures["smoothing"] == "kneser-ney"
        assert figures["test_characters"] == chars
        assert _positive_finite(figures["bits_per_character"])
        assert figures["bits_per_character"] == pytest.approx(
            figures["test_nats"] / chars / math.log(2), rel=1e-12)
        assert figures["perplexity_per_token"] == pytest.approx(
            math.exp(figures["test_nats"] / chars), rel=1e-12)
        assert figures["fit_seconds"] >= 0 and figures["score_seconds"] >= 0
    best = min(ngram["orders"], key=lambda f: f["bits_per_character"])
    assert ngram["best_order"] == best["order"]
    assert ngram["bits_per_character"] == best["bits_per_character"]


@pytest.mark.parametrize("name", ["char", "bpe"])
def test_transformer_figures_are_consistent(results, name) -> None:
    figures, chars = results["transformers"][name], results["data"]["test_characters"]
    assert figures["tokenizer"] == name
    assert figures["test_characters"] == chars
    for key in ("bits_per_character", "perplexity_per_token", "nats_per_token",
                "final_train_loss", "tokens_per_second"):
        assert _positive_finite(figures[key]), key
    # bits per character: total nats over the test text / characters / ln 2
    assert figures["bits_per_character"] == pytest.approx(
        figures["test_nats"] / chars / math.log(2), rel=1e-12)
    assert figures["perplexity_per_token"] == pytest.approx(
        math.exp(figures["test_nats"] / figures["test_tokens"]), rel=1e-12)
    assert 0 < figures["eval_stride"] <= figures["model"]["context"]
    beats = figures["bits_per_character"] < results["ngram"]["bits_per_character"]
    assert figures["beats_ngram"] is beats


def test_char_model_scores_every_character_and_counts_the_same_unseen_ones(results) -> None:
    char = results["transformers"]["char"]
    assert char["test_tokens"] == results["data"]["test_characters"]
    assert char["unseen_characters"] == results["ngram"]["orders"][0]["unseen_characters"]


def test_headline_says_whether_a_transformer_beats_the_ngram(results) -> None:
    models = results["transformers"].values()
    assert results["transformer_beats_ngram"] is any(f["beats_ngram"] for f in models)
