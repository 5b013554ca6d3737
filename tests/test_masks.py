"""Masks (§3.2.3) and the one mask convention: boolean, True = may attend, broadcastable to
(batch, heads, q_len, k_len), combined with &; and the adapter to PyTorch's True = ignore."""

import pytest
import torch
from torch import nn

from transformer import causal_mask, decoder_mask, padding_mask, to_torch_masks


def test_padding_mask_is_true_on_real_tokens_with_shape_batch_1_1_seq():
    tokens = torch.tensor([[5, 3, 0, 0], [7, 0, 2, 0]])
    mask = padding_mask(tokens, pad_id=0)
    assert mask.shape == (2, 1, 1, 4) and mask.dtype == torch.bool
    assert mask[:, 0, 0].tolist() == [[True, True, False, False], [True, False, True, False]]


def test_padding_mask_uses_the_given_pad_id():
    tokens = torch.tensor([[1, 2, 3]])
    assert padding_mask(tokens, pad_id=2)[0, 0, 0].tolist() == [True, False, True]


@pytest.mark.parametrize(("q_len", "k_len"), [(1, 1), (4, 4), (3, 7), (1, 5)])
def test_causal_mask_lets_query_i_see_keys_up_to_i_plus_offset(q_len, k_len):
    mask = causal_mask(q_len, k_len)
    assert mask.shape == (1, 1, q_len, k_len) and mask.dtype == torch.bool
    for i in range(q_len):
        for j in range(k_len):
            assert bool(mask[0, 0, i, j]) == (j <= i + k_len - q_len)


def test_square_causal_mask_is_lower_triangular():
    mask = causal_mask(5)[0, 0]
    assert torch.equal(mask, torch.ones(5, 5, dtype=torch.bool).tril())


def test_last_row_of_a_longer_causal_mask_is_one_decoding_step():
    """With a KV cache, the new query is the last row of the full mask."""
    assert torch.equal(causal_mask(1, 6)[0, 0, 0], causal_mask(6)[0, 0, -1])


def test_padding_and_causal_combine_with_and_to_batch_1_q_k():
    tokens = torch.tensor([[4, 5, 6], [4, 0, 0]])
    mask = padding_mask(tokens, 0) & causal_mask(3)
    assert mask.shape == (2, 1, 3, 3)
    assert mask[1, 0].tolist() == [[True, False, False], [True, False, False],
                                   [True, False, False]]
    assert torch.equal(mask[0, 0], causal_mask(3)[0, 0])


def test_to_torch_masks_of_a_padding_mask_is_the_inverted_key_padding_mask():
    ours = padding_mask(torch.tensor([[3, 1, 0], [2, 0, 0]]), 0)
    key_padding_mask, attn_mask = to_torch_masks(ours)
    assert attn_mask is None
    assert key_padding_mask.tolist() == [[False, False, True], [False, True, True]]
    assert torch.equal(~key_padding_mask[:, None, None, :], ours)  # round trip


def test_to_torch_masks_of_a_causal_mask_is_a_2d_attn_mask():
    key_padding_mask, attn_mask = to_torch_masks(causal_mask(3, 5))
    assert key_padding_mask is None and attn_mask.shape == (3, 5)
    assert torch.equal(~attn_mask[None, None], causal_mask(3, 5))  # round trip
    # ... and it is exactly what PyTorch builds for itself (True = ignore there).
    ref = nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    assert torch.equal(to_torch_masks(causal_mask(4))[1], ref.isinf())


@pytest.mark.parametrize("n_heads", [1, 3])
def test_to_torch_masks_of_a_per_batch_mask_expands_over_heads(n_heads):
    tokens = torch.tensor([[1, 1, 0], [1, 0, 0]])
    ours = padding_mask(tokens, 0) & causal_mask(3)  # (2, 1, 3, 3)
    key_padding_mask, attn_mask = to_torch_masks(ours, n_heads)
    assert key_padding_mask is None and attn_mask.shape == (2 * n_heads, 3, 3)
    back = ~attn_mask.view(2, n_heads, 3, 3)  # PyTorch's order: batch-major, then heads
    assert torch.equal(back, ours.expand(2, n_heads, 3, 3))


def test_to_torch_masks_of_none_is_none():
    assert to_torch_masks(None) == (None, None)


def test_decoder_mask_without_a_cache_is_padding_and_causal():
    tokens = torch.tensor([[4, 5, 6, 0], [4, 0, 0, 0]])
    mask = decoder_mask(tokens, pad_id=0)
    assert mask.shape == (2, 1, 4, 4)
    assert torch.equal(mask, padding_mask(tokens, 0) & causal_mask(4))
    assert mask[0, 0, 3].tolist() == [True, True, True, False]  # the last query: no pad key


@pytest.mark.parametrize(("cache_len", "new"), [(0, 3), (5, 1), (4, 2)])
def test_decoder_mask_with_a_cache_lets_new_queries_see_every_cached_key(cache_len, new):
    tokens = torch.tensor([[7] * new, [0] * new])  # padding is not masked with a cache
    mask = decoder_mask(tokens, pad_id=0, cache_len=cache_len)
    assert mask.shape == (1, 1, new, cache_len + new)
    assert torch.equal(mask, causal_mask(new, cache_len + new))
    assert mask[0, 0, :, :cache_len].all()  # every cached position is in the past
