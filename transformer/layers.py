"""Feed-forward, residual + layer norm, and the encoder and decoder layers (§3.1, §3.3).

Each layer is a stack of *sublayers*, each wrapped as ``LayerNorm(x + Sublayer(x))`` (post-LN,
the paper's choice, the default) or ``x + Sublayer(LayerNorm(x))`` (pre-LN, a later variant that
trains more stably without warm-up; ``norm_first=True``). The modern variants of chapter 15 are
here too: :class:`RMSNorm` (``norm="rmsnorm"``) and the SwiGLU feed-forward
(:class:`SwiGLUFeedForward`, ``activation="swiglu"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer.attention import KVCache, MultiHeadAttention, RotaryMultiHeadAttention

__all__ = [
    "DecoderLayer",
    "DecoderLayerCache",
    "EncoderLayer",
    "PositionwiseFeedForward",
    "RMSNorm",
    "ResidualSublayer",
    "SwiGLUFeedForward",
    "feed_forward",
    "make_norm",
    "swiglu_hidden_size",
]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}
GATED_ACTIVATIONS = ("swiglu",)  # Shazeer 2020: SwiGLUFeedForward, three matrices
NORMS = ("layernorm", "rmsnorm")


# --8<-- [start:feed_forward]
class PositionwiseFeedForward(nn.Module):
    r"""Eq. 2: :math:`\operatorname{FFN}(x) = \max(0, xW_1 + b_1)W_2 + b_2`.

    Applied to each position separately and identically: ``(batch, seq, d_model)`` in and out,
    through an inner width ``d_ff`` (2048 in the base model). ``activation="gelu"`` swaps the
    ReLU for GELU (as in BERT and GPT).
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu",
                 bias: bool = True) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.linear1 = nn.Linear(d_model, d_ff, bias=bias)  # W_1, b_1
        self.linear2 = nn.Linear(d_ff, d_model, bias=bias)  # W_2, b_2
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.dropout(self.activation(self.linear1(x)))  # (batch, seq, d_ff)
        return self.linear2(hidden)  # (batch, seq, d_model)
# --8<-- [end:feed_forward]


# --8<-- [start:swiglu]
def swiglu_hidden_size(d_ff: int, multiple_of: int = 1) -> int:
    """The inner width of SwiGLU that keeps the parameters of a ReLU network of width ``d_ff``:
    ``int(2·d_ff/3)`` (three matrices instead of two, so never more weights), rounded up to a
    multiple of ``multiple_of`` if asked (LLaMA uses 256, for faster kernels)."""
    return multiple_of * math.ceil(int(2 * d_ff / 3) / multiple_of)


class SwiGLUFeedForward(nn.Module):
    r"""The gated feed-forward network of Shazeer 2020 ("GLU Variants Improve Transformer",
    eq. 6), a modern replacement of eq. 2:
    :math:`\operatorname{FFN}_{SwiGLU}(x) = (\operatorname{Swish}_1(xW) \otimes xV)\,W_2`,
    with :math:`\operatorname{Swish}_1 = \operatorname{SiLU}`: :math:`x\,\sigma(x)`.

    ``(batch, seq, d_model)`` in and out, through an inner width ``d_hidden`` (use
    :func:`swiglu_hidden_size` to match a ReLU network's parameters).
    """

    def __init__(self, d_model: int, d_hidden: int, dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__()
        self.w = nn.Linear(d_model, d_hidden, bias=bias)  # W: the gate
        self.v = nn.Linear(d_model, d_hidden, bias=bias)  # V: the value
        self.w2 = nn.Linear(d_hidden, d_model, bias=bias)  # W_2
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        hidden = F.silu(self.w(x)) * self.v(x)  # (batch, seq, d_hidden): Swish(xW) ⊗ xV
        return self.w2(self.dropout(hidden))  # (batch, seq, d_model)
# --8<-- [end:swiglu]


def feed_forward(d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu",
                 bias: bool = True) -> nn.Module:
    """The feed-forward sublayer for ``activation``: eq. 2 (``"relu"``, ``"gelu"``) or SwiGLU
    (``"swiglu"``, inner width :func:`swiglu_hidden_size` of ``d_ff``).

    Raises:
        ValueError: if ``activation`` is not one of them.
    """
    if activation in GATED_ACTIVATIONS:
        return SwiGLUFeedForward(d_model, swiglu_hidden_size(d_ff), dropout, bias)
    if activation not in ACTIVATIONS:
        known = sorted(ACTIVATIONS) + sorted(GATED_ACTIVATIONS)
        raise ValueError(f"activation must be one of {known}, got {activation!r}")
    return PositionwiseFeedForward(d_model, d_ff, dropout, activation, bias)


# --8<-- [start:rms_norm]
class RMSNorm(nn.Module):
    r"""Root-mean-square normalization (Zhang & Sennrich 2019): layer norm without the mean
    and without the bias,
    :math:`\operatorname{RMSNorm}(x) = \frac{x}{\sqrt{\frac{1}{d}\sum_i x_i^2 + \epsilon}}
    \odot g`, over the last dimension of ``(..., d_model)``. Equal to ``torch.nn.RMSNorm``
    with the same ``eps``.
    """

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))  # g, the gain

    def forward(self, x: Tensor) -> Tensor:
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return x / rms * self.weight  # (..., d_model)
# --8<-- [end:rms_norm]


def make_norm(norm: str, d_model: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """``nn.LayerNorm`` (the paper's; with a bias unless ``bias=False``) or :class:`RMSNorm`
    (which has none), over ``d_model`` features.

    Raises:
        ValueError: if ``norm`` is not ``"layernorm"`` or ``"rmsnorm"``.
    """
    if norm == "rmsnorm":
        return RMSNorm(d_model, eps=eps)
    if norm != "layernorm":
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    return nn.LayerNorm(d_model, eps=eps, bias=bias)


# --8<-- [start:residual]
class ResidualSublayer(nn.Module):
    """Residual connection around a sublayer, followed (post-LN) or preceded (pre-LN) by
    layer normalization (§3.1).

    "the output of each sub-layer is LayerNorm(x + Sublayer(x))" and "We apply dropout to the
    output of each sub-layer, before it is added to the sub-layer input" (§5.4).

    ``norm="rmsnorm"`` puts an :class:`RMSNorm` where the LayerNorm was; ``bias=False`` drops
    the LayerNorm's bias (chapter 15).
    """

    def __init__(self, d_model: int, dropout: float = 0.0, norm_first: bool = False,
                 eps: float = 1e-5, *, norm: str = "layernorm", bias: bool = True) -> None:
        super().__init__()
        self.norm = make_norm(norm, d_model, eps, bias)  # LayerNorm, or RMSNorm (chapter 15)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        """``x``: ``(batch, seq, d_model)``; ``sublayer`` maps that shape to itself."""
        if self.norm_first:  # pre-LN: x + Sublayer(LayerNorm(x))
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))  # post-LN, the paper's
# --8<-- [end:residual]


def _attention(d_model: int, n_heads: int, dropout: float, bias: bool, fused: bool,
               n_kv_heads: int | None, rotary: nn.Module | None = None) -> MultiHeadAttention:
    """Multi-head attention, rotary (RoPE) when a ``rotary`` embedding is given."""
    if rotary is None:
        return MultiHeadAttention(d_model, n_heads, dropout, bias=bias, fused=fused,
                                  n_kv_heads=n_kv_heads)
    return RotaryMultiHeadAttention(d_model, n_heads, rotary, dropout, bias=bias, fused=fused,
                                    n_kv_heads=n_kv_heads)


# --8<-- [start:encoder_layer]
class EncoderLayer(nn.Module):
    """One encoder layer (§3.1): self-attention, then the feed-forward network, each a
    residual sublayer. ``(batch, seq, d_model)`` in and out.

    With a causal mask and a :class:`~transformer.attention.KVCache` the same layer is the
    block of a decoder-only (GPT-style) model.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5,
                 bias: bool = True, fused_qkv: bool = False, *, norm: str = "layernorm",
                 n_kv_heads: int | None = None, rotary: nn.Module | None = None) -> None:
        super().__init__()
        self.self_attn = _attention(d_model, n_heads, dropout, bias, fused_qkv, n_kv_heads, rotary)
        self.feed_forward = feed_forward(d_model, d_ff, dropout, activation, bias)
        self.sublayer1 = ResidualSublayer(d_model, dropout, norm_first, eps, norm=norm, bias=bias)
        self.sublayer2 = ResidualSublayer(d_model, dropout, norm_first, eps, norm=norm, bias=bias)

    def forward(self, x: Tensor, *, src_mask: Tensor | None = None,
                cache: KVCache | None = None, is_causal: bool = False) -> Tensor:
        """``x``: ``(batch, seq, d_model)``; ``src_mask``, the self-attention mask,
        broadcastable to ``(batch, heads, seq, seq)`` (``True`` = may attend); ``is_causal``
        instead of a mask: causal self-attention (the decoder-only model's fast path)."""
        x = self.sublayer1(x, lambda y: self.self_attn(y, y, y, mask=src_mask, cache=cache,
                                                       is_causal=is_causal)[0])
        return self.sublayer2(x, self.feed_forward)  # (batch, seq, d_model)
# --8<-- [end:encoder_layer]


@dataclass
class DecoderLayerCache:
    """What one decoder layer keeps between decoding steps."""

    self_attn: KVCache = field(default_factory=KVCache)  # grows by one step each call
    cross_attn: KVCache = field(default_factory=KVCache)  # the encoder output, projected once


# --8<-- [start:decoder_layer]
class DecoderLayer(nn.Module):
    """One decoder layer (§3.1): masked self-attention, attention over the encoder output
    ("encoder-decoder attention", §3.2.3), then the feed-forward network.

    "This masking, combined with fact that the output embeddings are offset by one position,
    ensures that the predictions for position i can depend only on the known outputs at
    positions less than i."
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5,
                 bias: bool = True, fused_qkv: bool = False, *, norm: str = "layernorm",
                 n_kv_heads: int | None = None, rotary: nn.Module | None = None) -> None:
        super().__init__()
        self.self_attn = _attention(d_model, n_heads, dropout, bias, fused_qkv, n_kv_heads, rotary)
        # Cross-attention is never rotary: queries and keys count positions in two sequences.
        self.cross_attn = _attention(d_model, n_heads, dropout, bias, fused_qkv, n_kv_heads)
        self.feed_forward = feed_forward(d_model, d_ff, dropout, activation, bias)
        self.sublayer1 = ResidualSublayer(d_model, dropout, norm_first, eps, norm=norm, bias=bias)
        self.sublayer2 = ResidualSublayer(d_model, dropout, norm_first, eps, norm=norm, bias=bias)
        self.sublayer3 = ResidualSublayer(d_model, dropout, norm_first, eps, norm=norm, bias=bias)

    def forward(self, x: Tensor, memory: Tensor, *, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, cache: DecoderLayerCache | None = None
                ) -> Tensor:
        """``x``: ``(batch, tgt_len, d_model)``; ``memory``: encoder output
        ``(batch, src_len, d_model)``; ``tgt_mask`` (self-attention) broadcastable to
        ``(batch, heads, tgt_len, tgt_len)``, ``memory_mask`` (cross-attention) to
        ``(batch, heads, tgt_len, src_len)``."""
        sa_cache, ca_cache = (cache.self_attn, cache.cross_attn) if cache else (None, None)
        x = self.sublayer1(x, lambda y: self.self_attn(y, y, y, mask=tgt_mask, cache=sa_cache)[0])
        x = self.sublayer2(x, lambda y: self.cross_attn(
            y, memory, memory, mask=memory_mask, cache=ca_cache, static_kv=True)[0])
        return self.sublayer3(x, self.feed_forward)  # (batch, tgt_len, d_model)
# --8<-- [end:decoder_layer]
