"""The whole encoder-decoder equals ``torch.nn.Transformer`` once the weights are copied with
:mod:`transformer.interop` (float64, dropout 0, padded batches, the causal mask); and the
loaders refuse models that do not fit."""

import pytest
import torch
from helpers import PAD, TOL, padded_tokens, rng, transformer_pair
from torch import nn

from transformer import (
    EncoderLayer,
    MultiHeadAttention,
    Transformer,
    TransformerConfig,
    causal_mask,
    padding_mask,
    to_torch_masks,
)
from transformer.interop import (
    load_torch_encoder_layer,
    load_torch_multihead_attention,
    load_torch_transformer,
)

# nn.Transformer's pre-LN encoder cannot use nested tensors and says so; nothing to see here.
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")


def _pair(seed: int, norm_first: bool, activation: str, fused: bool = False):
    cfg = TransformerConfig.tiny(vocab_size=23, n_layers=2, final_norm=True,
                                 norm_first=norm_first, activation=activation, fused_qkv=fused)
    return transformer_pair(seed, cfg)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_decoder_stacks_equal_torch_transformer_on_padded_batches(seed, norm_first,
                                                                         activation):
    ours, theirs = _pair(seed, norm_first, activation)
    g = rng(seed)
    src = padded_tokens(g, [9, 6, 2 + seed], 23)  # padding on both sides, ragged rows
    tgt = padded_tokens(g, [5, 7, 1 + seed], 23)
    x_src = ours.positions(ours.src_embed(src))
    x_tgt = ours.positions(ours.tgt_embed(tgt))
    src_pad, tgt_pad = padding_mask(src, PAD), padding_mask(tgt, PAD)
    src_kpm, tgt_kpm = to_torch_masks(src_pad)[0], to_torch_masks(tgt_pad)[0]
    causal = to_torch_masks(causal_mask(tgt.shape[1]))[1]

    memory = ours.encoder(x_src, src_mask=src_pad)
    their_memory = theirs.encoder(x_src, src_key_padding_mask=src_kpm)
    real_src, real_tgt = src != PAD, tgt != PAD
    torch.testing.assert_close(memory[real_src], their_memory[real_src], **TOL)

    out = ours.decoder(x_tgt, memory, tgt_mask=tgt_pad & causal_mask(tgt.shape[1]),
                       memory_mask=src_pad)
    their_out = theirs.decoder(x_tgt, memory, tgt_mask=causal, tgt_key_padding_mask=tgt_kpm,
                               memory_key_padding_mask=src_kpm)
    torch.testing.assert_close(out[real_tgt], their_out[real_tgt], **TOL)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("fused", [False, True], ids=["separate_qkv", "fused_qkv"])
def test_model_logits_equal_torch_transformer_between_our_embeddings_and_generator(
        seed, norm_first, fused):
    ours, theirs = _pair(seed, norm_first, "relu", fused)
    g = rng(10 + seed)
    src = padded_tokens(g, [8, 3, 5], 23)
    tgt = padded_tokens(g, [2, 6, 6], 23)

    logits = ours(src, tgt)  # default masks: padding on both sides, causal on the target
    hidden = theirs(
        ours.positions(ours.src_embed(src)), ours.positions(ours.tgt_embed(tgt)),
        tgt_mask=to_torch_masks(causal_mask(tgt.shape[1]))[1],
        src_key_padding_mask=src == PAD, tgt_key_padding_mask=tgt == PAD,
        memory_key_padding_mask=src == PAD)
    want = ours.generator(hidden)
    real = tgt != PAD
    assert logits.shape == (3, 6, 23)
    torch.testing.assert_close(logits[real], want[real], **TOL)


def test_padding_tokens_do_not_change_the_real_positions():
    """Appending padding to the source or target leaves the logits of real tokens unchanged."""
    cfg = TransformerConfig.tiny(vocab_size=23)
    torch.manual_seed(0)
    model = Transformer(cfg).double().eval()
    src, tgt = torch.tensor([[5, 6, 7]]), torch.tensor([[1, 2]])
    short = model(src, tgt)
    long = model(torch.tensor([[5, 6, 7, PAD, PAD]]), torch.tensor([[1, 2, PAD]]))
    torch.testing.assert_close(long[:, :2], short, **TOL)


# --- the loaders check what they copy -------------------------------------------------------

def test_loading_mha_with_other_heads_is_refused():
    with pytest.raises(ValueError, match=r"num_heads=2.*n_heads=4"):
        load_torch_multihead_attention(MultiHeadAttention(16, 4),
                                       nn.MultiheadAttention(16, 2, batch_first=True))


def test_loading_mha_with_and_without_bias_is_refused():
    with pytest.raises(ValueError, match="bias"):
        load_torch_multihead_attention(MultiHeadAttention(16, 4, bias=False),
                                       nn.MultiheadAttention(16, 4, batch_first=True))


def test_loading_layers_with_other_norm_placement_is_refused():
    with pytest.raises(ValueError, match="norm_first"):
        load_torch_encoder_layer(EncoderLayer(16, 4, 32, norm_first=False),
                                 nn.TransformerEncoderLayer(16, 4, 32, norm_first=True,
                                                            batch_first=True))


def test_loading_a_transformer_without_final_norm_is_refused():
    ours = Transformer(TransformerConfig.tiny(final_norm=False))
    theirs = nn.Transformer(32, 4, 2, 2, 64, batch_first=True)
    with pytest.raises(ValueError, match="final_norm"):
        load_torch_transformer(ours, theirs)


def test_loading_a_transformer_with_other_depth_is_refused():
    ours = Transformer(TransformerConfig.tiny(final_norm=True))
    theirs = nn.Transformer(32, 4, 3, 3, 64, batch_first=True)
    with pytest.raises(ValueError, match="layer counts differ"):
        load_torch_transformer(ours, theirs)
