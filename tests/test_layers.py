"""Feed-forward (eq. 2), residual + LayerNorm (§3.1), and the encoder and decoder layers, proven
equal to ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` (float64, dropout 0)."""

import pytest
import torch
import torch.nn.functional as F
from helpers import TOL, decoder_layer_pair, encoder_layer_pair, lengths_mask, randn, rng

from transformer import (
    DecoderLayer,
    EncoderLayer,
    PositionwiseFeedForward,
    ResidualSublayer,
    causal_mask,
    to_torch_masks,
)

D_MODEL, N_HEADS, D_FF = 32, 4, 48


def test_feed_forward_is_max_0_xw1_b1_w2_b2():
    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(8, 16).double()
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    w1, b1, w2, b2 = ffn.linear1.weight, ffn.linear1.bias, ffn.linear2.weight, ffn.linear2.bias
    torch.testing.assert_close(ffn(x), torch.clamp(x @ w1.T + b1, min=0) @ w2.T + b2, **TOL)


def test_feed_forward_acts_on_each_position_separately():
    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(8, 16, activation="gelu").double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    per_position = torch.stack([ffn(x[:, t:t + 1])[:, 0] for t in range(5)], dim=1)
    torch.testing.assert_close(ffn(x), per_position, **TOL)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_residual_sublayer_is_layernorm_of_x_plus_sublayer_or_the_pre_ln_variant(norm_first):
    torch.manual_seed(0)
    block = ResidualSublayer(8, norm_first=norm_first).double()
    x = torch.randn(2, 3, 8, dtype=torch.float64)

    def sublayer(y):
        return 2 * y + 1

    def ln(y):
        return F.layer_norm(y, (8,), eps=1e-5)

    want = x + sublayer(ln(x)) if norm_first else ln(x + sublayer(x))
    torch.testing.assert_close(block(x, sublayer), want, **TOL)


def _encoder_pair(seed, activation, norm_first):
    return encoder_layer_pair(seed, D_MODEL, N_HEADS, D_FF, activation, norm_first)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("masking", ["none", "padding", "causal", "padding_and_causal"])
def test_encoder_layer_equals_torch_encoder_layer(seed, norm_first, activation, masking):
    ours, theirs = _encoder_pair(seed, activation, norm_first)
    g = rng(seed)
    batch, seq = 3, 7
    x = randn(g, batch, seq, D_MODEL)
    lengths = [seq, 4, 1 + seed]
    pad = lengths_mask(lengths, seq) if "padding" in masking else None
    causal = causal_mask(seq) if "causal" in masking else None
    key_padding_mask, _ = to_torch_masks(pad)
    _, attn_mask = to_torch_masks(causal)
    mask = pad if causal is None else causal if pad is None else pad & causal

    want = theirs(x, src_mask=attn_mask, src_key_padding_mask=key_padding_mask)
    got = ours(x, src_mask=mask)
    real = torch.arange(seq)[None, :] < torch.tensor(lengths)[:, None]  # (batch, seq)
    if pad is None:
        real = torch.ones_like(real)
    # PyTorch's fast path may leave padded query positions out; compare the real ones.
    torch.testing.assert_close(got[real], want[real], **TOL)


def _decoder_pair(seed, activation, norm_first):
    return decoder_layer_pair(seed, D_MODEL, N_HEADS, D_FF, activation, norm_first)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("padding", [False, True], ids=["unpadded", "padded"])
def test_decoder_layer_equals_torch_decoder_layer(seed, norm_first, activation, padding):
    ours, theirs = _decoder_pair(seed, activation, norm_first)
    g = rng(seed)
    batch, tgt_len, src_len = 3, 6, 9
    x, memory = randn(g, batch, tgt_len, D_MODEL), randn(g, batch, src_len, D_MODEL)
    tgt_lengths = [tgt_len, 3, 1 + seed] if padding else [tgt_len] * batch
    src_lengths = [src_len, 5, 2 + seed] if padding else [src_len] * batch
    tgt_pad, src_pad = lengths_mask(tgt_lengths, tgt_len), lengths_mask(src_lengths, src_len)

    want = theirs(x, memory, tgt_mask=to_torch_masks(causal_mask(tgt_len))[1],
                  tgt_key_padding_mask=to_torch_masks(tgt_pad)[0],
                  memory_key_padding_mask=to_torch_masks(src_pad)[0])
    got = ours(x, memory, tgt_mask=tgt_pad & causal_mask(tgt_len), memory_mask=src_pad)
    real = tgt_pad[:, 0, 0]  # (batch, tgt_len)
    torch.testing.assert_close(got[real], want[real], **TOL)
    if not padding:
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_decoder_layer_only_looks_back(norm_first):
    """Changing target position t changes no output before t (§3.2.3)."""
    torch.manual_seed(0)
    layer = DecoderLayer(D_MODEL, N_HEADS, D_FF, dropout=0.0, norm_first=norm_first).double()
    x, memory = torch.randn(2, 6, D_MODEL, dtype=torch.float64), torch.randn(
        2, 4, D_MODEL, dtype=torch.float64)
    before = layer(x, memory, tgt_mask=causal_mask(6))
    x2 = x.clone()
    x2[:, 4] += 1.0
    after = layer(x2, memory, tgt_mask=causal_mask(6))
    torch.testing.assert_close(after[:, :4], before[:, :4], **TOL)
    assert not torch.allclose(after[:, 4], before[:, 4])


def test_layers_have_the_papers_parameter_count():
    """Per layer: 4 d_model² + 4 d_model attention, 2 d_model d_ff + d_ff + d_model FFN,
    2 d_model per LayerNorm."""
    d, f = 512, 2048
    attention, ffn, norm = 4 * d * d + 4 * d, 2 * d * f + f + d, 2 * d
    enc = EncoderLayer(d, 8, f)
    dec = DecoderLayer(d, 8, f)
    assert sum(p.numel() for p in enc.parameters()) == attention + ffn + 2 * norm
    assert sum(p.numel() for p in dec.parameters()) == 2 * attention + ffn + 3 * norm
