"""transformer.complexity, the bench of §4 (Table 1): work counted from shapes agrees with
PyTorch's FLOP counter, restricted attention equals full attention under a band mask, and path
lengths found from dependency graphs follow the paper's orders of growth."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from transformer.attention import MultiHeadAttention
from transformer.complexity import (
    LAYERS,
    RestrictedSelfAttention,
    band_mask,
    build_layer,
    macs,
    maximum_path_length,
    measure,
    sequential_operations,
)


@pytest.mark.parametrize("layer", ["self-attention", "convolutional",
                                   "restricted self-attention"])
@pytest.mark.parametrize("n", [7, 40])
def test_counted_macs_equal_the_flop_counter(layer: str, n: int) -> None:
    module = build_layer(layer, 16, heads=2, r=5)
    with FlopCounterMode(display=False) as counter:
        module(torch.randn(2, n, 16))
    assert counter.get_total_flops() == 2 * 2 * macs(layer, n, 16, r=5)  # batch 2, 2 FLOPs/MAC


def test_lstm_macs_are_one_multiplication_per_weight_per_step() -> None:
    lstm = build_layer("recurrent", 24).lstm
    weights = lstm.weight_ih_l0.numel() + lstm.weight_hh_l0.numel()
    assert macs("recurrent", 10, 24) == 10 * weights


@pytest.mark.parametrize("r", [1, 3, 7])
def test_restricted_attention_equals_multi_head_attention_with_a_band_mask(r: int) -> None:
    torch.manual_seed(r)
    restricted = RestrictedSelfAttention(16, 4, r).double()
    full = MultiHeadAttention(16, 4).double()
    full.load_state_dict(restricted.state_dict())
    x = torch.randn(3, 9, 16, dtype=torch.double)
    torch.testing.assert_close(restricted(x), full(x, x, x, band_mask(9, r))[0])


def test_path_lengths_grow_as_table_1_says() -> None:
    for n in (5, 27, 100):
        assert maximum_path_length("self-attention", n) == 1
        assert maximum_path_length("recurrent", n) == n - 1
        assert maximum_path_length("convolutional", n, k=3) == math.ceil(math.log(n, 3) - 1e-9)
        assert maximum_path_length("restricted self-attention", n, r=5) == math.ceil((n - 1) / 2)
    assert [sequential_operations(layer, 12) for layer in LAYERS] == [1, 12, 1, 1]


def test_measure_counts_the_n_by_n_weights_of_eq_1() -> None:
    layers = {"eq1": lambda: build_layer("self-attention", 32, heads=2),
              "conv": lambda: build_layer("convolutional", 32)}
    saved = {(m.layer, m.n): m.saved_bytes for m in measure(layers, [64, 128], 32, repeats=1)}
    assert saved["conv", 128] == 2 * saved["conv", 64]
    assert saved["eq1", 128] > 2.5 * saved["eq1", 64]
    assert torch.get_num_threads() >= 1  # restored


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="layer must be one of"):
        macs("transformer", 4, 4)
    with pytest.raises(ValueError, match="r a positive odd integer"):
        band_mask(4, 2)
    with pytest.raises(ValueError, match="r must be a positive odd integer"):
        RestrictedSelfAttention(8, 2, 4)
    with pytest.raises(ValueError, match="n must be at least 2"):
        maximum_path_length("recurrent", 1)
