"""Feed-forward, residual + layer norm, and the encoder and decoder layers (§3.1, §3.3).

Each layer is a stack of *sublayers*, each wrapped as ``LayerNorm(x + Sublayer(x))`` (post-LN,
the paper's choice, the default) or ``x + Sublayer(LayerNorm(x))`` (pre-LN, a later variant that
trains more stably without warm-up; ``norm_first=True``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from transformer.attention import KVCache, MultiHeadAttention

__all__ = [
    "DecoderLayer",
    "DecoderLayerCache",
    "EncoderLayer",
    "PositionwiseFeedForward",
    "ResidualSublayer",
]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


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


# --8<-- [start:residual]
class ResidualSublayer(nn.Module):
    """Residual connection around a sublayer, followed (post-LN) or preceded (pre-LN) by
    layer normalization (§3.1).

    "the output of each sub-layer is LayerNorm(x + Sublayer(x))" and "We apply dropout to the
    output of each sub-layer, before it is added to the sub-layer input" (§5.4).
    """

    def __init__(self, d_model: int, dropout: float = 0.0, norm_first: bool = False,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        """``x``: ``(batch, seq, d_model)``; ``sublayer`` maps that shape to itself."""
        if self.norm_first:  # pre-LN: x + Sublayer(LayerNorm(x))
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))  # post-LN, the paper's
# --8<-- [end:residual]


# --8<-- [start:encoder_layer]
class EncoderLayer(nn.Module):
    """One encoder layer (§3.1): self-attention, then the feed-forward network, each a
    residual sublayer. ``(batch, seq, d_model)`` in and out.

    With a causal mask and a :class:`~transformer.attention.KVCache` the same layer is the
    block of a decoder-only (GPT-style) model.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5,
                 bias: bool = True, fused_qkv: bool = False) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias, fused=fused_qkv)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout, activation, bias)
        self.sublayer1 = ResidualSublayer(d_model, dropout, norm_first, eps)
        self.sublayer2 = ResidualSublayer(d_model, dropout, norm_first, eps)

    def forward(self, x: Tensor, *, src_mask: Tensor | None = None,
                cache: KVCache | None = None) -> Tensor:
        """``x``: ``(batch, seq, d_model)``; ``src_mask``, the self-attention mask,
        broadcastable to ``(batch, heads, seq, seq)`` (``True`` = may attend)."""
        x = self.sublayer1(x, lambda y: self.self_attn(y, y, y, mask=src_mask, cache=cache)[0])
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
                 bias: bool = True, fused_qkv: bool = False) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias, fused=fused_qkv)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias, fused=fused_qkv)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout, activation, bias)
        self.sublayer1 = ResidualSublayer(d_model, dropout, norm_first, eps)
        self.sublayer2 = ResidualSublayer(d_model, dropout, norm_first, eps)
        self.sublayer3 = ResidualSublayer(d_model, dropout, norm_first, eps)

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
