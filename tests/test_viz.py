"""Looking inside (transformer/viz.py, docs/14-looking-inside.md): attention maps equal what
record_attention collects, entropy and induction scores match their definitions, nearest
neighbours match brute force, every plot draws the panels and labels it should, a trained copy
model's cross-attention is a diagonal, and a 2-layer model grows an induction head."""

import math

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported

import matplotlib.pyplot as plt
import pytest
import torch

from transformer import (
    DecoderOnlyTransformer,
    Transformer,
    TransformerConfig,
    padding_mask,
    record_attention,
    sinusoidal_table,
)
from transformer.data.synthetic import PAD
from transformer.tasks import TASKS
from transformer.tasks.induction import INDUCTION, loss_by_half
from transformer.training import Trainer, seed_everything
from transformer.viz import (
    attention_entropy,
    attention_heatmap,
    attention_maps,
    induction_scores,
    nearest_neighbours,
    neighbours_table,
    plot_attention,
    plot_attention_entropy,
    plot_learning_rate,
    plot_positional_encoding,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _padded_pair():
    """A tiny encoder-decoder (2 layers, 4 heads) and a batch whose second row is padded."""
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.tiny(vocab_size=16, n_layers=2, dropout=0.1))
    src = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, PAD, PAD]])  # (2, 5)
    tgt = torch.tensor([[1, 5, 6, 7], [1, 5, PAD, PAD]])  # (2, 4)
    return model, src, tgt


# ------------------------------------------------------------------ attention_maps

def test_attention_maps_stack_what_record_attention_collects_layer_by_layer():
    model, src, tgt = _padded_pair()
    maps = attention_maps(model, src, tgt)
    model.eval()
    with torch.no_grad(), record_attention(model) as recorded:
        model(src, tgt)
    assert sorted(maps) == ["cross", "decoder", "encoder"]
    assert maps["encoder"].shape == (2, 2, 4, 5, 5)  # (batch, layers, heads, q, k)
    assert maps["decoder"].shape == (2, 2, 4, 4, 4)
    assert maps["cross"].shape == (2, 2, 4, 4, 5)
    for layer in range(2):
        torch.testing.assert_close(maps["encoder"][:, layer],
                                   recorded[f"encoder.layers.{layer}.self_attn"])
        torch.testing.assert_close(maps["decoder"][:, layer],
                                   recorded[f"decoder.layers.{layer}.self_attn"])
        torch.testing.assert_close(maps["cross"][:, layer],
                                   recorded[f"decoder.layers.{layer}.cross_attn"])


def test_attention_maps_hide_padding_run_without_dropout_and_restore_training_mode():
    model, src, tgt = _padded_pair()
    model.train()  # dropout 0.1 on the weights: attention_maps must switch it off
    maps = attention_maps(model, src, tgt)
    assert model.training
    assert torch.equal(attention_maps(model, src, tgt)["cross"], maps["cross"])  # no dropout
    for kind, keys in (("encoder", src), ("cross", src), ("decoder", tgt)):
        rows = maps[kind].sum(dim=-1)
        torch.testing.assert_close(rows, torch.ones_like(rows))  # every row a distribution
        hidden = (keys == PAD)[:, None, None, None, :].expand_as(maps[kind])
        assert (maps[kind][hidden] == 0).all() and hidden.any()
    future = torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1)
    assert (maps["decoder"][..., future] == 0).all()


def test_attention_maps_of_a_decoder_only_model_are_its_causal_self_attention():
    torch.manual_seed(0)
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=16, n_layers=3))
    tokens = torch.randint(3, 16, (2, 6))
    maps = attention_maps(model, tokens)
    model.eval()
    with torch.no_grad(), record_attention(model) as recorded:
        model(tokens)
    assert list(maps) == ["decoder"] and maps["decoder"].shape == (2, 3, 4, 6, 6)
    torch.testing.assert_close(maps["decoder"][:, 2], recorded["layers.2.self_attn"])
    assert (maps["decoder"].triu(diagonal=1) == 0).all()


def test_attention_maps_pass_masks_to_the_forward_pass():
    model, src, tgt = _padded_pair()
    everything = torch.ones(1, 1, 1, 5, dtype=torch.bool)  # padding visible after all
    maps = attention_maps(model, src, tgt, src_mask=everything, memory_mask=everything)
    assert (maps["cross"][1, ..., 3:] > 0).all()


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda m, s, t: attention_maps(m, s), ValueError, "tgt is required for a Transformer"),
    (lambda m, s, t: attention_maps(m, s, t, mask=None), TypeError,
     r"masks must be among \['memory_mask', 'src_mask', 'tgt_mask'\]"),
    (lambda m, s, t: attention_maps(torch.nn.Linear(2, 2), s, t), TypeError,
     "model must be a Transformer or a DecoderOnlyTransformer, got Linear"),
])
def test_attention_maps_refuse_bad_calls_naming_the_argument(call, error, message):
    model, src, tgt = _padded_pair()
    with pytest.raises(error, match=message):
        call(model, src, tgt)


def test_attention_maps_refuse_a_tgt_for_a_decoder_only_model():
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=16))
    tokens = torch.randint(3, 16, (2, 6))
    with pytest.raises(ValueError, match="pass its tokens as src and no tgt"):
        attention_maps(model, tokens, tokens)


# ------------------------------------------------------------------ attention_entropy

def test_entropy_of_uniform_rows_is_log_k_and_of_one_hot_rows_is_zero():
    k = 7
    uniform = torch.full((2, 3, 5, k), 1 / k)  # (layers, heads, q, k)
    one_hot = torch.nn.functional.one_hot(torch.randint(0, k, (2, 3, 5)), k).float()
    torch.testing.assert_close(attention_entropy(uniform), torch.full((2, 3), math.log(k)))
    torch.testing.assert_close(attention_entropy(one_hot), torch.zeros(2, 3))
    batch = torch.stack([uniform, one_hot])  # (batch=2, layers, heads, q, k): averaged
    torch.testing.assert_close(attention_entropy(batch), torch.full((2, 3), math.log(k) / 2))


def test_entropy_counts_masked_keys_as_zero_and_leaves_out_empty_and_unchosen_rows():
    weights = torch.zeros(1, 1, 1, 3, 4)  # (batch, layers, heads, q, k)
    weights[..., 0, :2] = 0.5  # two allowed keys, the others masked: log 2
    weights[..., 1, :] = 0.25  # four keys: log 4
    # row 2 stays all zero: a row with no allowed key, not a distribution
    assert attention_entropy(weights).item() == pytest.approx((math.log(2) + math.log(4)) / 2)
    queries = torch.tensor([[True, False, True]])  # (batch, q): row 1 is padding
    assert attention_entropy(weights, queries=queries).item() == pytest.approx(math.log(2))


def test_entropy_matches_the_definition_on_real_attention():
    model, src, tgt = _padded_pair()
    weights = attention_maps(model, src, tgt)["decoder"].double()  # (2, 2, 4, 4, 4)
    by_hand = torch.zeros(2, 4, dtype=torch.float64)
    for layer in range(2):
        for head in range(4):
            rows = [weights[b, layer, head, q] for b in range(2) for q in range(4)]
            by_hand[layer, head] = sum(-sum(p * math.log(p) for p in row.tolist() if p > 0)
                                       for row in rows) / len(rows)
    torch.testing.assert_close(attention_entropy(weights), by_hand)


@pytest.mark.parametrize(("weights", "kwargs", "message"), [
    (torch.ones(3, 4), {}, r"float tensor \(\.\.\., layers, heads, q_len, k_len\)"),
    (torch.randn(1, 1, 2, 3), {}, "rows of non-negative numbers summing to 1"),
    (torch.full((1, 1, 2, 3), 1 / 3), {"queries": torch.ones(3, dtype=torch.bool)},
     r"queries must be a bool tensor of shape \(2,\)"),
    (torch.zeros(1, 1, 2, 3), {}, "no attention row to average"),
])
def test_entropy_refuses_what_is_not_attention(weights, kwargs, message):
    with pytest.raises(ValueError, match=message):
        attention_entropy(weights, **kwargs)


# ------------------------------------------------------------------ induction_scores

def _causal_uniform(seq):
    return torch.tril(torch.ones(seq, seq)) / torch.arange(1, seq + 1)[:, None]  # (seq, seq)


def test_a_perfect_induction_head_scores_one_and_a_uniform_head_the_mean_of_one_over_i():
    half, seq = torch.tensor([4, 3]), 7
    uniform = _causal_uniform(seq)
    weights = uniform.repeat(2, 1, 2, 1, 1)  # (batch=2, layers=1, heads=2, seq, seq)
    for b, t in enumerate(half.tolist()):
        for i in range(t, 2 * t - 1):  # head 1 of row b: all weight on i - T + 1
            weights[b, 0, 1, i] = torch.nn.functional.one_hot(torch.tensor(i - t + 1), seq)
    scores = induction_scores(weights, half)
    expected_uniform = [1 / (i + 1) for t in (4, 3) for i in range(t, 2 * t - 1)]
    assert scores.shape == (1, 2)
    assert scores[0, 1].item() == pytest.approx(1.0)
    assert scores[0, 0].item() == pytest.approx(sum(expected_uniform) / len(expected_uniform))


def test_induction_scores_refuse_a_half_that_does_not_fit():
    weights = _causal_uniform(5).expand(2, 1, 1, 5, 5)
    with pytest.raises(ValueError, match=r"2 <= T and 2T - 1 <= seq=5, got \[3, 4\]"):
        induction_scores(weights, torch.tensor([3, 4]))
    with pytest.raises(ValueError, match=r"self-attention \(batch, layers, heads, seq, seq\)"):
        induction_scores(weights[0], 2)


# ------------------------------------------------------------------ nearest neighbours

def _brute_force(weight, token, k, metric, exclude=()):
    others = [i for i in range(weight.shape[0]) if i != token and i not in exclude]
    if metric == "cosine":
        score = {i: torch.nn.functional.cosine_similarity(weight[i], weight[token], dim=0).item()
                 for i in others}
        ranked = sorted(others, key=lambda i: -score[i])
    else:
        score = {i: math.dist(weight[i].tolist(), weight[token].tolist()) for i in others}
        ranked = sorted(others, key=lambda i: score[i])
    return ranked[:k], [score[i] for i in ranked[:k]]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbours_match_brute_force(metric):
    weight = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
    for token in (0, 7, 29):
        found = nearest_neighbours(weight, token, 5, metric, exclude=(1, 2))
        ids, scores = _brute_force(weight, token, 5, metric, exclude=(1, 2))
        assert found.ids.tolist() == ids
        torch.testing.assert_close(found.scores, torch.tensor(scores), rtol=1e-5, atol=1e-5)


def test_neighbours_table_labels_every_token_and_its_neighbours():
    weight = torch.eye(4) + torch.tensor([[0.0, 0.9, 0, 0], [0.9, 0, 0, 0], [0, 0, 0, 0.8],
                                          [0, 0, 0.8, 0]])
    table = neighbours_table(weight, [0, 2], k=1, labels=["a", "b", "c", "d"])
    assert table.splitlines() == ["| token | 1 nearest (cosine similarity) |", "|---|---|",
                                  "| `a` | `b` 0.99 |", "| `c` | `d` 0.98 |"]


@pytest.mark.parametrize(("args", "message"), [
    ((torch.randn(5), 0, 2), r"embedding_weight must be a float tensor \(vocab, d_model\)"),
    ((torch.randn(5, 3), 5, 2), r"token_id must hold token ids in \[0, 5\), got 5"),
    ((torch.randn(5, 3), 0, 5), r"k must be an integer in \[1, 4\]"),
    ((torch.randn(5, 3), 0, 2, "dot"), r"metric must be one of \['cosine', 'euclidean'\]"),
])
def test_nearest_neighbours_refuse_bad_arguments_naming_them(args, message):
    with pytest.raises(ValueError, match=message):
        nearest_neighbours(*args)


# ------------------------------------------------------------------ plots (Agg)

def _texts(labels):
    """The written tick labels (a panel without labels has empty ones)."""
    return [label.get_text() for label in labels if label.get_text()]


def test_attention_grid_has_a_panel_per_layer_and_head_with_token_labels_on_a_padded_batch():
    model, src, tgt = _padded_pair()
    maps = attention_maps(model, src, tgt)
    keys, queries = ["Die", "Katze", "schläft", "<pad>", "<pad>"], ["<s>", "The", "<pad>", "<pad>"]
    allowed = padding_mask(src, PAD)[1, 0]  # (1, 5) of the padded row
    fig = plot_attention(maps["cross"][1], queries, keys, allowed=allowed)
    panels, colorbar = fig.axes[:8], fig.axes[8:]
    assert len(panels) == 2 * 4 and len(colorbar) == 1  # layers × heads, one colour bar
    assert panels[0].get_title() == "layer 0, head 0" and panels[7].get_title() == "layer 1, head 3"
    for i, ax in enumerate(panels):
        assert _texts(ax.get_yticklabels()) == (queries if i % 4 == 0 else [])
        assert _texts(ax.get_xticklabels()) == (keys if i >= 4 else [])
        shown = ax.images[0].get_array()
        assert shown.mask[:, 3:].all() and not shown.mask[:, :3].any()  # padding drawn grey


def test_one_layer_or_one_map_draws_one_row_of_panels():
    weights = torch.softmax(torch.randn(3, 4, 6), dim=-1)  # (heads, q, k)
    fig = plot_attention(weights)
    assert len(fig.axes) == 3 + 1
    assert [ax.get_title() for ax in fig.axes[:3]] == ["head 0", "head 1", "head 2"]
    assert _texts(fig.axes[0].get_xticklabels()) == [str(j) for j in range(6)]
    assert len(plot_attention(weights[0], titles=["one map"]).axes) == 2
    with pytest.raises(ValueError, match=r"keys must have one label per position \(6\), got 2"):
        plot_attention(weights, keys=["a", "b"])
    with pytest.raises(ValueError, match="allowed must be broadcastable"):
        plot_attention(weights, allowed=torch.ones(5, dtype=torch.bool))


def test_attention_heatmap_draws_on_a_given_axes():
    _, ax = plt.subplots()
    image = attention_heatmap(ax, torch.eye(3), ["a", "b", "c"], ["x", "y", "z"], title="t")
    assert image.get_array().shape == (3, 3) and ax.get_title() == "t"
    assert _texts(ax.get_xticklabels()) == ["x", "y", "z"]


def test_entropy_plot_has_a_panel_and_a_colour_bar_per_kind_and_a_number_per_head():
    model, src, tgt = _padded_pair()
    maps = attention_maps(model, src, tgt)
    entropy = {kind: attention_entropy(w) for kind, w in maps.items()}
    fig = plot_attention_entropy(entropy, max_entropy=math.log(5))
    assert len(fig.axes) == 3 + 3
    for ax, (kind, values) in zip(fig.axes[:3], entropy.items(), strict=False):
        assert ax.get_title() == kind
        assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in values.flatten().tolist()]
        assert _texts(ax.get_xticklabels()) == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match=r"entropy must be \(layers, heads\)"):
        plot_attention_entropy(torch.zeros(3))


def test_positional_encoding_plot_shows_the_whole_table():
    fig = plot_positional_encoding(sinusoidal_table(50, 32), title="PE")
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    assert fig.axes[0].images[0].get_array().shape == (50, 32)
    with pytest.raises(ValueError, match=r"table must be \(max_len, d_model\)"):
        plot_positional_encoding(torch.zeros(3))


def test_learning_rate_plot_draws_each_curve_and_labels_its_peak():
    rates = [min(s ** -0.5, s * 10 ** -1.5) for s in range(1, 101)]  # eq. 3 shape, warmup 10
    fig = plot_learning_rate({"a": rates, "b": [r / 2 for r in rates]}, warmup_steps=10)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("step")] == [
        f"step 10: {rates[9]:.2e}", f"step 10: {rates[9] / 2:.2e}"]
    assert _texts(ax.get_legend().get_texts()) == ["a", "b"]
    with pytest.raises(ValueError, match="non-empty sequences of rates"):
        plot_learning_rate({"a": []})


# ------------------------------------------------------------------ trained models

def test_cross_attention_of_the_trained_copy_model_is_on_the_diagonal(copy_smoke):
    """In the last decoder layer, at >= 90% of the held-out target positions, the heads' mean
    cross-attention weighs the source position being copied most (docs/10, docs/14)."""
    recipe, model, _ = copy_smoke
    test = TASKS["copy"].data(recipe, "test")  # 1,000 held-out sequences
    cross = attention_maps(model, test["src"], test["tgt_in"])["cross"]  # (1000, 1, 4, 11, 10)
    weights = cross[:, -1].mean(dim=1)  # (1000, 11, 10): last layer, heads averaged
    lengths = (test["src"] != PAD).sum(dim=1)  # (1000,)
    t = torch.arange(test["src"].shape[1])
    real = t < lengths[:, None]  # (1000, 10): step t outputs source token t
    on_diagonal = weights[:, : len(t)].argmax(dim=-1) == t  # (1000, 10)
    assert on_diagonal[real].float().mean().item() >= 0.9
    mean_diagonal = weights[:, t, t][real].mean().item()
    mean_uniform = (1 / lengths.float()).mean().item()  # what spreading evenly would give
    assert mean_diagonal > max(0.6, 2 * mean_uniform)


@pytest.fixture(scope="module")
def induction():
    """The induction recipe as it is (a few hundred steps, seconds) and its held-out data."""
    recipe = INDUCTION.recipe()
    seed_everything(recipe.seed)
    model = DecoderOnlyTransformer(INDUCTION.model_config(recipe))
    Trainer(model, recipe.train_config(progress=False, device="cpu"),
            INDUCTION.data(recipe, "train")).train()
    return recipe, model.eval(), INDUCTION.data(recipe, "test")


def test_second_half_loss_falls_far_below_the_near_uniform_first_half(induction):
    recipe, model, test = induction
    first, second = loss_by_half(model, test)
    chance = math.log(recipe.vocab_size - 3)  # uniform over the 20 ordinary tokens
    assert 0.9 * chance < first < 1.05 * chance  # nothing to learn there
    assert second < 0.5 * first


def test_a_head_of_the_second_layer_attends_to_the_token_after_the_previous_occurrence(induction):
    _, model, test = induction
    scores = induction_scores(attention_maps(model, test["tokens"])["decoder"], test["half"])
    assert scores.shape == (2, 4)
    assert scores[1].max() > 0.5  # the induction head
    assert scores[0].max() < 0.25  # the first layer cannot do it alone
