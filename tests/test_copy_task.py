"""The copy task end to end: the Transformer learns it.

The smoke model (the ``copy_smoke`` fixture of tests/conftest.py) is the recipe of
``benchmarks/copy_task.py`` trained for a fraction of its steps (a couple of seconds); these
tests check that it learned far beyond chance, and tests/test_viz.py that its cross-attention
found the diagonal. The slow test trains until 1,000 held-out sequences are all copied exactly.
"""

import math

import pytest
import torch

from transformer import Transformer
from transformer.data.synthetic import FIRST_TOKEN, PAD
from transformer.tasks import EXACT_MATCH, TASKS, exact_match_rate, train_until
from transformer.training import Trainer, seed_everything
from transformer.training.loss import label_smoothed_nll

SMOKE_STEPS = 200  # COPY_SMOKE_STEPS of tests/conftest.py
COPY = TASKS["copy"]


@pytest.fixture(scope="module")
def smoke(copy_smoke):
    recipe, model, history = copy_smoke  # tests/conftest.py: trained once per session
    assert recipe.max_steps == SMOKE_STEPS and len(history) == SMOKE_STEPS
    test = COPY.data(recipe, "test")  # 1,000 held-out sequences
    assert test["src"].shape[0] == 1000
    with torch.no_grad():
        logits = model(test["src"], test["tgt_in"])  # teacher forcing: (1000, 11, 13)
    return recipe, model, history, test, logits


def test_loss_drops_from_chance_to_well_below_log_of_the_symbol_count(smoke):
    recipe, _, history, test, logits = smoke
    symbols = recipe.vocab_size - FIRST_TOKEN  # 10 ordinary tokens
    held_out = label_smoothed_nll(logits, test["tgt_out"], 0.0, PAD).item()
    assert history[0]["loss"] > math.log(symbols)  # the untrained model is no better than chance
    assert held_out < 0.25 * math.log(symbols)  # plain NLL per target token, on unseen data


def test_token_accuracy_is_far_above_chance(smoke):
    recipe, _, _, test, logits = smoke
    counted = test["tgt_out"] != PAD
    correct = (logits.argmax(dim=-1) == test["tgt_out"]) & counted
    accuracy = (correct.sum() / counted.sum()).item()
    assert accuracy > 0.9 > 1 / (recipe.vocab_size - FIRST_TOKEN)


def test_greedy_decoding_already_copies_most_held_out_sequences(smoke):
    _, model, _, test, _ = smoke
    assert exact_match_rate(model, test) > 0.5


@pytest.mark.slow
def test_the_recipe_copies_1000_held_out_sequences_exactly():
    recipe = COPY.recipe()
    test = COPY.data(recipe, "test")
    seed_everything(recipe.seed)
    model = Transformer(COPY.model_config(recipe))
    trainer = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      COPY.data(recipe, "train"))
    history = train_until(trainer, test, EXACT_MATCH, eval_every=50)
    rates = [m["exact_match"] for m in history if "exact_match" in m]
    assert rates[-1] == 1.0, f"exact match every 50 steps: {rates}"
    assert exact_match_rate(model, test, beam_size=2) == 1.0  # beam search agrees
