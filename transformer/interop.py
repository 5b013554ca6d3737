"""Copy weights from PyTorch's own modules into ours, to check one against the other.

PyTorch stores the three input projections of ``nn.MultiheadAttention`` as one
``in_proj_weight`` of shape ``(3·d_model, d_model)`` = ``[W^Q; W^K; W^V]``; the layers keep
``linear1``/``linear2`` for eq. 2 and ``norm1``/``norm2``/``norm3`` for the sublayers. These
functions copy them in place, so both models compute the same function; the equivalence tests
and the multi-head attention chapter use them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from transformer.attention import MultiHeadAttention
from transformer.layers import DecoderLayer, EncoderLayer, PositionwiseFeedForward
from transformer.model import Decoder, Encoder, Transformer

__all__ = [
    "load_torch_decoder_layer",
    "load_torch_encoder_layer",
    "load_torch_multihead_attention",
    "load_torch_transformer",
]


def _copy(dst: torch.Tensor | None, src: torch.Tensor | None, name: str) -> None:
    if (dst is None) != (src is None):
        raise ValueError(f"{name}: one model has a bias and the other does not")
    if dst is None or src is None:
        return
    if dst.shape != src.shape:
        raise ValueError(f"{name}: shape {tuple(src.shape)} does not fit {tuple(dst.shape)}")
    dst.copy_(src)


# --8<-- [start:load_torch_mha]
@torch.no_grad()
def load_torch_multihead_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention
                                   ) -> MultiHeadAttention:
    """Copy ``theirs`` (``batch_first`` or not, same ``embed_dim`` and heads) into ``ours``."""
    if not theirs._qkv_same_embed_dim:
        raise ValueError("theirs must use the same embed_dim for query, key and value")
    if (theirs.embed_dim, theirs.num_heads) != (ours.d_model, ours.n_heads):
        raise ValueError(f"theirs has embed_dim={theirs.embed_dim}, num_heads="
                         f"{theirs.num_heads}; ours has d_model={ours.d_model}, n_heads="
                         f"{ours.n_heads}")
    w = theirs.in_proj_weight  # (3 * d_model, d_model) = [W^Q; W^K; W^V]
    b = theirs.in_proj_bias
    if ours.fused:
        _copy(ours.w_qkv.weight, w, "in_proj_weight")
        _copy(ours.w_qkv.bias, b, "in_proj_bias")
    else:
        for i, lin in enumerate((ours.w_q, ours.w_k, ours.w_v)):
            _copy(lin.weight, w.chunk(3)[i], "in_proj_weight")
            _copy(lin.bias, None if b is None else b.chunk(3)[i], "in_proj_bias")
    _copy(ours.w_o.weight, theirs.out_proj.weight, "out_proj.weight")
    _copy(ours.w_o.bias, theirs.out_proj.bias, "out_proj.bias")
    return ours
# --8<-- [end:load_torch_mha]


def _load_ff(ours: PositionwiseFeedForward, theirs: nn.Module) -> None:
    if not isinstance(ours, PositionwiseFeedForward):
        raise ValueError(f"torch's layers have a ReLU/GELU feed-forward (eq. 2); ours is a "
                         f"{type(ours).__name__}")
    for name in ("linear1", "linear2"):
        _copy(getattr(ours, name).weight, getattr(theirs, name).weight, f"{name}.weight")
        _copy(getattr(ours, name).bias, getattr(theirs, name).bias, f"{name}.bias")


def _load_norm(ours: nn.Module, theirs: nn.Module, name: str) -> None:
    if type(ours) is not type(theirs):
        raise ValueError(f"{name}: ours is a {type(ours).__name__}, theirs a "
                         f"{type(theirs).__name__}")
    _copy(ours.weight, theirs.weight, f"{name}.weight")
    _copy(ours.bias, theirs.bias, f"{name}.bias")


def _check_norm_first(ours: nn.Module, theirs: nn.Module) -> None:
    if ours.sublayer1.norm_first != theirs.norm_first:
        raise ValueError(f"norm_first differs: ours {ours.sublayer1.norm_first}, theirs "
                         f"{theirs.norm_first}")


@torch.no_grad()
def load_torch_encoder_layer(ours: EncoderLayer, theirs: nn.TransformerEncoderLayer
                             ) -> EncoderLayer:
    """Copy an ``nn.TransformerEncoderLayer`` into our :class:`EncoderLayer`."""
    _check_norm_first(ours, theirs)
    load_torch_multihead_attention(ours.self_attn, theirs.self_attn)
    _load_ff(ours.feed_forward, theirs)
    _load_norm(ours.sublayer1.norm, theirs.norm1, "norm1")
    _load_norm(ours.sublayer2.norm, theirs.norm2, "norm2")
    return ours


@torch.no_grad()
def load_torch_decoder_layer(ours: DecoderLayer, theirs: nn.TransformerDecoderLayer
                             ) -> DecoderLayer:
    """Copy an ``nn.TransformerDecoderLayer`` into our :class:`DecoderLayer`."""
    _check_norm_first(ours, theirs)
    load_torch_multihead_attention(ours.self_attn, theirs.self_attn)
    load_torch_multihead_attention(ours.cross_attn, theirs.multihead_attn)
    _load_ff(ours.feed_forward, theirs)
    for i in (1, 2, 3):
        _load_norm(getattr(ours, f"sublayer{i}").norm, getattr(theirs, f"norm{i}"), f"norm{i}")
    return ours


def _load_stack(ours: Encoder | Decoder, theirs: nn.TransformerEncoder | nn.TransformerDecoder,
                load_layer: Callable[[nn.Module, nn.Module], nn.Module]) -> None:
    if len(ours.layers) != len(theirs.layers):
        raise ValueError(f"layer counts differ: ours {len(ours.layers)}, theirs "
                         f"{len(theirs.layers)}")
    for a, b in zip(ours.layers, theirs.layers, strict=True):
        load_layer(a, b)
    if (theirs.norm is None) != isinstance(ours.norm, nn.Identity):
        raise ValueError("final norm differs: set TransformerConfig.final_norm to match")
    if theirs.norm is not None:
        _load_norm(ours.norm, theirs.norm, "norm")


@torch.no_grad()
def load_torch_transformer(ours: Transformer, theirs: nn.Transformer) -> Transformer:
    """Copy the encoder and decoder stacks of an ``nn.Transformer`` into ours.

    ``nn.Transformer`` has no embeddings or output projection, so ours keep their own;
    ``nn.Transformer`` always ends each stack with a LayerNorm, so build ours with
    ``final_norm=True``.
    """
    _load_stack(ours.encoder, theirs.encoder, load_torch_encoder_layer)
    _load_stack(ours.decoder, theirs.decoder, load_torch_decoder_layer)
    return ours
