"""The copy task end to end: the Transformer learns it, and its cross-attention finds the diagonal.

The smoke test trains the recipe of ``benchmarks/copy_task.py`` for a fraction of its steps (a
couple of seconds) and checks that it learned far beyond chance; the slow test trains until
1,000 held-out sequences are all copied exactly.
"""

import math

import pytest
import torch

from transformer import Transformer, record_attention
from transformer.data.synthetic import FIRST_TOKEN, PAD
from transformer.tasks import EXACT_MATCH, TASKS, SyntheticRecipe, exact_match_rate, train_until
from transformer.training import Trainer, seed_everything
from transformer.training.loss import label_smoothed_nll

SMOKE_STEPS = 200
COPY = TASKS["copy"]


def _train(recipe: SyntheticRecipe) -> tuple[Transformer, list[dict[str, float]]]:
    seed_everything(recipe.seed)
    model = Transformer(COPY.model_config(recipe))
    history = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                      COPY.data(recipe, "train")).train()
    return model, history


@pytest.fixture(scope="module")
def smoke():
    recipe = COPY.recipe(max_steps=SMOKE_STEPS)
    model, history = _train(recipe)
    test = COPY.data(recipe, "test")  # 1,000 held-out sequences
    assert test["src"].shape[0] == 1000
    model.eval()
    with torch.no_grad(), record_attention(model) as maps:
        logits = model(test["src"], test["tgt_in"])  # teacher forcing: (1000, 11, 13)
    return recipe, model, history, test, logits, maps


def test_loss_drops_from_chance_to_well_below_log_of_the_symbol_count(smoke):
    recipe, _, history, test, logits, _ = smoke
    symbols = recipe.vocab_size - FIRST_TOKEN  # 10 ordinary tokens
    held_out = label_smoothed_nll(logits, test["tgt_out"], 0.0, PAD).item()
    assert history[0]["loss"] > math.log(symbols)  # the untrained model is no better than chance
    assert held_out < 0.25 * math.log(symbols)  # plain NLL per target token, on unseen data


def test_token_accuracy_is_far_above_chance(smoke):
    recipe, _, _, test, logits, _ = smoke
    counted = test["tgt_out"] != PAD
    correct = (logits.argmax(dim=-1) == test["tgt_out"]) & counted
    accuracy = (correct.sum() / counted.sum()).item()
    assert accuracy > 0.9 > 1 / (recipe.vocab_size - FIRST_TOKEN)


def test_greedy_decoding_already_copies_most_held_out_sequences(smoke):
    _, model, _, test, _, _ = smoke
    assert exact_match_rate(model, test) > 0.5


def test_cross_attention_of_the_trained_model_is_on_the_diagonal(smoke):
    """In the last decoder layer, at >= 90% of the held-out positions, the heads' mean
    cross-attention weighs the source position being copied most (docs/10-copy-task.md)."""
    recipe, _, _, test, _, maps = smoke
    last = f"decoder.layers.{recipe.n_layers - 1}.cross_attn"
    weights = maps[last].mean(dim=1)  # (1000, 11, 10): heads averaged
    lengths = (test["src"] != PAD).sum(dim=1)  # (1000,)
    t = torch.arange(test["src"].shape[1])
    real = t < lengths[:, None]  # (1000, 10): step t outputs source token t
    on_diagonal = weights[:, : len(t)].argmax(dim=-1) == t  # (1000, 10)
    assert on_diagonal[real].float().mean().item() >= 0.9
    mean_diagonal = weights[:, t, t][real].mean().item()
    mean_uniform = (1 / lengths.float()).mean().item()  # what spreading evenly would give
    assert mean_diagonal > max(0.6, 2 * mean_uniform)


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
