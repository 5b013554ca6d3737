"""Attention (§3.2): ours equals PyTorch's, the fast path equals the explicit math of eq. 1,
gradients are right, and a query with no allowed key gives zeros, never NaN.

Everything runs in float64 with dropout 0 and random weights, so "equal" means <= 1e-10.
"""

import math

import pytest
import torch
from helpers import TOL, lengths_mask, mha_pair, randn, rng
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from transformer import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    record_attention,
    scaled_dot_product_attention,
    to_torch_masks,
)

D_MODEL, N_HEADS = 32, 4


def _pair(seed: int, fused: bool) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    return mha_pair(seed, D_MODEL, N_HEADS, fused)


# --- 1. ours == torch.nn.MultiheadAttention -------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fused", [False, True], ids=["separate_qkv", "fused_qkv"])
@pytest.mark.parametrize("kind", ["self", "cross"])
@pytest.mark.parametrize("masking", ["none", "padding", "causal", "padding_and_causal"])
def test_multi_head_attention_equals_torch_outputs_and_per_head_weights(seed, fused, kind,
                                                                        masking):
    ours, theirs = _pair(seed, fused)
    g = rng(100 + seed)
    batch, q_len = 3, 6
    k_len = q_len if kind == "self" else 9  # cross-attention: a different number of keys
    query = randn(g, batch, q_len, D_MODEL)
    key = query if kind == "self" else randn(g, batch, k_len, D_MODEL)
    value = query if kind == "self" else randn(g, batch, k_len, D_MODEL)

    mask = None
    if "padding" in masking:  # right padding, every row keeps its first key
        mask = lengths_mask([k_len, k_len - 2, 1 + seed], k_len)
    if "causal" in masking:
        causal = causal_mask(q_len, k_len)
        mask = causal if mask is None else mask & causal
    key_padding_mask, attn_mask = to_torch_masks(mask, N_HEADS)

    want, want_weights = theirs(query, key, value, key_padding_mask=key_padding_mask,
                                attn_mask=attn_mask, need_weights=True,
                                average_attn_weights=False)
    fast, none = ours(query, key, value, mask)
    explicit, weights = ours(query, key, value, mask, need_weights=True)

    assert none is None
    assert weights.shape == (batch, N_HEADS, q_len, k_len)
    torch.testing.assert_close(fast, want, **TOL)
    torch.testing.assert_close(explicit, want, **TOL)
    torch.testing.assert_close(weights, want_weights, **TOL)


@pytest.mark.parametrize("seed", range(2))
def test_padding_and_causal_masks_given_separately_equal_torch(seed):
    """PyTorch's two mask arguments together == our one mask made with ``&``."""
    ours, theirs = _pair(seed, fused=False)
    g = rng(seed)
    x = randn(g, 2, 5, D_MODEL)
    pad, causal = lengths_mask([5, 3], 5), causal_mask(5)
    kpm, _ = to_torch_masks(pad)
    _, am = to_torch_masks(causal)
    want, _ = theirs(x, x, x, key_padding_mask=kpm, attn_mask=am, need_weights=False)
    got, _ = ours(x, x, x, pad & causal)
    torch.testing.assert_close(got, want, **TOL)


# --- 4. fast path == explicit path; gradients -----------------------------------------------

def _masks_with_empty_rows(g: torch.Generator, batch: int, q_len: int, k_len: int):
    mask = torch.rand(batch, 1, q_len, k_len, generator=g) < 0.5
    mask[0, :, 1] = False  # a query that may attend nowhere
    mask[-1, :, -1] = False
    return mask


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("masking", ["none", "causal", "random_with_empty_rows"])
def test_fast_path_equals_explicit_path(seed, fused, masking):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(D_MODEL, N_HEADS, fused=fused).double().eval()
    g = rng(seed)
    q, k = randn(g, 3, 5, D_MODEL), randn(g, 3, 7, D_MODEL)
    mask = {"none": None, "causal": causal_mask(5, 7),
            "random_with_empty_rows": _masks_with_empty_rows(g, 3, 5, 7)}[masking]
    fast, _ = mha(q, k, k, mask, need_weights=False)
    explicit, _ = mha(q, k, k, mask, need_weights=True)
    torch.testing.assert_close(fast, explicit, **TOL)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("with_mask", [False, True])
def test_scaled_dot_product_attention_passes_gradcheck(seed, with_mask):
    g = rng(seed)
    q = randn(g, 2, 2, 3, 4).requires_grad_()
    k = randn(g, 2, 2, 5, 4).requires_grad_()
    v = randn(g, 2, 2, 5, 3).requires_grad_()
    mask = _masks_with_empty_rows(g, 2, 3, 5) if with_mask else None

    def out(q, k, v):
        return scaled_dot_product_attention(q, k, v, mask)[0]

    assert torch.autograd.gradcheck(out, (q, k, v))


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "explicit"])
def test_gradients_are_finite_through_fully_masked_rows(need_weights):
    torch.manual_seed(0)
    mha = MultiHeadAttention(D_MODEL, N_HEADS).double()
    x = torch.randn(2, 4, D_MODEL, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)  # nothing allowed anywhere
    mask[1, :, 2:, :3] = True
    out, _ = mha(x, x, x, mask, need_weights=need_weights)
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mha.parameters())


def test_explicit_attention_is_softmax_of_scaled_scores():
    """Eq. 1 written out by hand for one head: weights = softmax(q·k / sqrt(d_k))."""
    g = rng(0)
    q, k, v = randn(g, 1, 2, 3), randn(g, 1, 4, 3), randn(g, 1, 4, 5)
    out, weights = scaled_dot_product_attention(q, k, v)
    for i in range(2):
        scores = [sum(q[0, i, c] * k[0, j, c] for c in range(3)) / math.sqrt(3) for j in range(4)]
        exp = [math.exp(s) for s in scores]
        expected = [e / sum(exp) for e in exp]
        torch.testing.assert_close(weights[0, i], torch.tensor(expected, dtype=torch.float64),
                                   **TOL)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, dtype=torch.float64), **TOL)
    torch.testing.assert_close(out, weights @ v, **TOL)


def test_masked_keys_get_exactly_zero_weight():
    g = rng(1)
    q, k = randn(g, 2, 3, 4), randn(g, 2, 5, 4)
    mask = lengths_mask([5, 2], 5)[:, 0]  # (batch, 1, k_len)
    _, weights = scaled_dot_product_attention(q, k, k, mask)
    assert (weights[1, :, 2:] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, dtype=torch.float64), **TOL)


# --- 5. a fully masked query row gives zeros, never NaN -------------------------------------

@st.composite
def _masked_problem(draw):
    batch = draw(st.integers(1, 3))
    heads = draw(st.integers(1, 3))
    q_len, k_len = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    bits = draw(st.lists(st.booleans(), min_size=batch * q_len * k_len,
                         max_size=batch * q_len * k_len))
    mask = torch.tensor(bits, dtype=torch.bool).view(batch, 1, q_len, k_len)
    empty = draw(st.lists(st.tuples(st.integers(0, batch - 1), st.integers(0, q_len - 1)),
                          min_size=1, max_size=3))
    for b, i in empty:  # force some rows to be fully masked
        mask[b, 0, i] = False
    seed = draw(st.integers(0, 2**16))
    return batch, heads, q_len, k_len, mask, seed


@settings(max_examples=60, deadline=None)
@given(_masked_problem())
def test_fully_masked_row_is_zero_not_nan_in_scaled_dot_product_attention(problem):
    batch, heads, q_len, k_len, mask, seed = problem
    g = rng(seed)
    q = randn(g, batch, heads, q_len, 4).requires_grad_()
    k = randn(g, batch, heads, k_len, 4).requires_grad_()
    v = randn(g, batch, heads, k_len, 3).requires_grad_()
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    empty = ~mask.any(-1)  # (batch, 1, q_len)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert (out.masked_select(empty[..., None].expand_as(out)) == 0).all()
    assert (weights.masked_select(empty[..., None].expand_as(weights)) == 0).all()
    (out.sum() + weights.sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@settings(max_examples=40, deadline=None)
@given(_masked_problem(), st.booleans(), st.booleans())
def test_fully_masked_row_is_zero_not_nan_in_multi_head_attention(problem, need_weights, fused):
    batch, heads, q_len, k_len, mask, seed = problem
    torch.manual_seed(seed)
    d_model = 2 * heads
    mha = MultiHeadAttention(d_model, heads, fused=fused).double()
    with torch.no_grad():
        mha.w_o.bias.normal_()
    g = rng(seed)
    query = randn(g, batch, q_len, d_model).requires_grad_()
    memory = randn(g, batch, k_len, d_model).requires_grad_()
    out, _ = mha(query, memory, memory, mask, need_weights=need_weights)
    assert torch.isfinite(out).all()
    empty = ~mask[:, 0].any(-1)  # (batch, q_len)
    # Before W^O the row is exactly zero, so after it the row is exactly W^O's bias.
    assert (out[empty] == mha.w_o.bias.detach()).all()
    out.square().sum().backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(memory.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mha.parameters())


# --- the rest of the module's promises ------------------------------------------------------

def test_weights_are_per_head_and_rows_sum_to_one():
    torch.manual_seed(0)
    mha = MultiHeadAttention(D_MODEL, N_HEADS).double()
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64)
    _, weights = mha(x, x, x, causal_mask(5), need_weights=True)
    assert weights.shape == (2, N_HEADS, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, N_HEADS, 5, dtype=torch.float64),
                               **TOL)
    assert (weights.triu(diagonal=1) == 0).all()  # nothing from the future


def test_fused_and_separate_projections_compute_the_same_function():
    torch.manual_seed(0)
    separate = MultiHeadAttention(D_MODEL, N_HEADS).double()
    fused = MultiHeadAttention(D_MODEL, N_HEADS, fused=True).double()
    with torch.no_grad():
        fused.w_qkv.weight.copy_(torch.cat([separate.w_q.weight, separate.w_k.weight,
                                            separate.w_v.weight]))
        fused.w_qkv.bias.copy_(torch.cat([separate.w_q.bias, separate.w_k.bias,
                                          separate.w_v.bias]))
        fused.w_o.load_state_dict(separate.w_o.state_dict())
    x, m = torch.randn(2, 5, D_MODEL, dtype=torch.float64), torch.randn(2, 3, D_MODEL,
                                                                       dtype=torch.float64)
    torch.testing.assert_close(fused(x, x, x)[0], separate(x, x, x)[0], **TOL)
    torch.testing.assert_close(fused(x, m, m)[0], separate(x, m, m)[0], **TOL)


def test_kv_cache_appends_sets_and_reorders():
    cache = KVCache()
    assert len(cache) == 0
    k1, v1 = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 3, 8)
    cache.append(k1, v1)
    k2, v2 = torch.randn(2, 4, 1, 8), torch.randn(2, 4, 1, 8)
    keys, values = cache.append(k2, v2)
    assert len(cache) == 4
    torch.testing.assert_close(keys, torch.cat([k1, k2], dim=2), rtol=0, atol=0)
    torch.testing.assert_close(values, torch.cat([v1, v2], dim=2), rtol=0, atol=0)
    cache.reorder(torch.tensor([1, 1]))
    torch.testing.assert_close(cache.key[0], keys[1], rtol=0, atol=0)
    cache.set(k1, v1)
    assert len(cache) == 3


@pytest.mark.parametrize("fused", [False, True])
def test_cached_self_attention_step_by_step_equals_full_sequence(fused):
    torch.manual_seed(0)
    mha = MultiHeadAttention(D_MODEL, N_HEADS, fused=fused).double().eval()
    x = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    full, _ = mha(x, x, x, causal_mask(7))
    cache = KVCache()
    steps = [mha(x[:, :3], x[:, :3], x[:, :3], causal_mask(3), cache=cache)[0]]  # prefill
    for t in range(3, 7):
        step = x[:, t:t + 1]
        steps.append(mha(step, step, step, causal_mask(1, t + 1), cache=cache)[0])
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **TOL)


def test_static_kv_cache_projects_memory_once():
    torch.manual_seed(0)
    mha = MultiHeadAttention(D_MODEL, N_HEADS).double().eval()
    x, memory = torch.randn(2, 3, D_MODEL, dtype=torch.float64), torch.randn(
        2, 5, D_MODEL, dtype=torch.float64)
    cache = KVCache()
    first, _ = mha(x[:, :1], memory, memory, cache=cache, static_kv=True)
    stored = cache.key
    second, _ = mha(x[:, 1:], memory, memory, cache=cache, static_kv=True)
    assert cache.key is stored  # not recomputed
    torch.testing.assert_close(torch.cat([first, second], 1), mha(x, memory, memory)[0], **TOL)


def test_record_attention_collects_every_module_and_cleans_up():
    torch.manual_seed(0)
    model = nn.ModuleDict({"a": MultiHeadAttention(8, 2), "b": MultiHeadAttention(8, 2)})
    x, y = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    with record_attention(model) as maps:
        model["a"](x, x, x)
        model["b"](x, y, y)
    assert set(maps) == {"a", "b"}
    assert maps["a"].shape == (1, 2, 3, 3) and maps["b"].shape == (1, 2, 3, 5)
    assert not model["a"].keep_weights and model["a"].last_weights is None
