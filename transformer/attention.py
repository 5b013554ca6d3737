"""Scaled dot-product attention and multi-head attention (Vaswani et al. 2017, §3.2).

Two paths compute the same thing:

- :func:`scaled_dot_product_attention` is the explicit math of eq. 1, the version the book
  shows; it also returns the attention weights.
- :class:`MultiHeadAttention` calls :func:`torch.nn.functional.scaled_dot_product_attention`
  (a fused kernel) when the weights are not needed, and the explicit path when they are.
  The tests prove the two agree.

Masks follow the package convention: boolean, ``True`` = "may attend", broadcastable to
``(batch, heads, q_len, k_len)``. A query with no allowed key gets a zero output, never NaN.

This file imports nothing but ``torch`` and the standard library, so it can be copied alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "KVCache",
    "MultiHeadAttention",
    "RotaryMultiHeadAttention",
    "record_attention",
    "scaled_dot_product_attention",
]


def _check_mask(mask: Tensor, scores_shape: tuple[int, ...], name: str = "mask") -> None:
    """Check that ``mask`` is boolean and broadcastable to the scores ``(..., q_len, k_len)``."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be a boolean tensor (True = may attend), got {got}")
    fits = 2 <= mask.dim() <= len(scores_shape) and all(
        m in (1, s) for m, s in zip(reversed(mask.shape), reversed(scores_shape), strict=False))
    if not fits:
        dims = "(batch, heads, q_len, k_len)" if len(scores_shape) == 4 else "(..., q_len, k_len)"
        raise ValueError(f"{name} must be broadcastable to {dims} = {tuple(scores_shape)}, "
                         f"got shape {tuple(mask.shape)}")


def _safe_mask(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Let fully masked query rows attend everywhere (so softmax stays finite); return them too."""
    empty_row = ~mask.any(dim=-1, keepdim=True)  # (..., q_len, 1): True where nothing is allowed
    return mask | empty_row, empty_row


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> None:
    """Check that ``q``, ``k``, ``v`` fit eq. 1 and that ``dropout_p`` is in ``[0, 1)``."""
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError("q, k and v must have at least 2 dims (..., seq, d), got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share d_k (last dim), got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length (dim -2), got {k.shape[-2]} and "
                         f"{v.shape[-2]}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")


# --8<-- [start:scaled_dot_product_attention]
def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    r"""Eq. 1: :math:`\operatorname{Attention}(Q, K, V) = \operatorname{softmax}(QK^T/\sqrt{d_k})V`.

    Args:
        q: queries ``(..., q_len, d_k)``, e.g. ``(batch, heads, q_len, d_k)``.
        k: keys ``(..., k_len, d_k)``.
        v: values ``(..., k_len, d_v)``.
        mask: boolean, ``True`` = may attend, broadcastable to ``(..., q_len, k_len)``.
        dropout_p: dropout on the attention weights (§5.4 applies dropout to sub-layer
            outputs; like PyTorch we also allow it on the weights). Use 0 at evaluation.

    Returns:
        ``(output, weights)``: ``(..., q_len, d_v)`` and ``(..., q_len, k_len)``. A query row
        with no allowed key has all-zero weights and a zero output.

    Raises:
        ValueError: if the shapes of ``q``, ``k``, ``v`` or ``mask`` do not fit together, or
            ``dropout_p`` is not in ``[0, 1)``.
        TypeError: if ``mask`` is not boolean.
    """
    _check_qkv(q, k, v, dropout_p)
    # --8<-- [start:attention_math]
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., q_len, k_len)
    empty_row = None
    if mask is not None:
        _check_mask(mask, scores.shape)
        mask, empty_row = _safe_mask(mask)
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: no weight
    weights = scores.softmax(dim=-1)  # (..., q_len, k_len), rows sum to 1
    if empty_row is not None:
        weights = weights.masked_fill(empty_row, 0.0)  # no allowed key: zeros, not NaN
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., q_len, d_v), (..., q_len, k_len)
    # --8<-- [end:attention_math]
# --8<-- [end:scaled_dot_product_attention]


# --8<-- [start:kv_cache]
class KVCache:
    """Keys and values already computed by one attention module, for incremental decoding.

    Self-attention appends the new step's keys and values (:meth:`append`); cross-attention
    stores the encoder's keys and values once (:meth:`set`) and reuses them at every step.
    Tensors are ``(batch, heads, length, d_head)``.
    """

    def __init__(self) -> None:
        self.key: Tensor | None = None
        self.value: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.key is None else self.key.shape[-2]

    def append(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Add ``(batch, heads, new, d_head)`` keys/values; return all of them so far."""
        if self.key is None or self.value is None:
            self.key, self.value = key, value
        else:
            self.key = torch.cat([self.key, key], dim=-2)  # (batch, heads, len + new, d_head)
            self.value = torch.cat([self.value, value], dim=-2)
        return self.key, self.value

    def set(self, key: Tensor, value: Tensor) -> None:
        """Store keys/values computed once (cross-attention over the encoder output)."""
        self.key, self.value = key, value

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (beam search reorders hypotheses every step)."""
        if self.key is not None and self.value is not None:
            self.key = self.key.index_select(0, index)
            self.value = self.value.index_select(0, index)
# --8<-- [end:kv_cache]


def _check_heads(d_model: int, n_heads: int, dropout: float, n_kv_heads: int | None) -> int:
    """Check :class:`MultiHeadAttention`'s sizes; return ``n_kv_heads`` (``n_heads`` if None)."""
    if d_model <= 0 or n_heads <= 0 or d_model % n_heads != 0:
        raise ValueError(f"d_model ({d_model}) must be a positive multiple of n_heads "
                         f"({n_heads})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    if not isinstance(n_kv_heads, int) or n_kv_heads <= 0 or n_heads % n_kv_heads != 0:
        raise ValueError(f"n_kv_heads must be None or a positive integer that divides "
                         f"n_heads ({n_heads}), got {n_kv_heads!r}")
    return n_kv_heads


def _check_causal(mask: Tensor | None, cache: object, q_len: int, k_len: int) -> None:
    if mask is not None or cache is not None or q_len != k_len:
        raise ValueError(f"is_causal=True is for a sequence attending to itself with no mask and "
                         f"no cache, got mask={'a tensor' if mask is not None else None}, "
                         f"cache={'a cache' if cache is not None else None}, q_len={q_len}, "
                         f"k_len={k_len}")


# --8<-- [start:mha_class]
class MultiHeadAttention(nn.Module):
    r"""Multi-head attention (§3.2.2).

    .. math::
        \operatorname{MultiHead}(Q, K, V) = \operatorname{Concat}(\mathrm{head}_1, \dots,
        \mathrm{head}_h) W^O, \quad
        \mathrm{head}_i = \operatorname{Attention}(Q W_i^Q, K W_i^K, V W_i^V)

    with :math:`d_k = d_v = d_{model} / h`. The ``h`` per-head projections are stored as one
    ``d_model × d_model`` matrix each (``w_q``, ``w_k``, ``w_v``), or, with ``fused=True``, as a
    single ``3·d_model × d_model`` matrix ``w_qkv`` (one matrix product for self-attention).

    With ``n_kv_heads`` < ``h`` (grouped-query attention, chapter 15) ``W^K`` and ``W^V`` make
    only ``n_kv_heads`` heads, each shared by ``h / n_kv_heads`` query heads (``w_qkv`` is then
    ``(d_model + 2·n_kv_heads·d_head) × d_model``); the KV cache stores those ``n_kv_heads``
    heads.

    Args:
        d_model: model width (512 in the base model).
        n_heads: number of heads ``h`` (8); must divide ``d_model``.
        dropout: dropout on the attention weights during training.
        bias: whether the projections have biases.
        fused: store Q, K, V projections as one matrix.
        n_kv_heads: key/value heads; ``None`` means ``n_heads`` (the paper's), 1 is
            multi-query attention. Must divide ``n_heads``.

    Raises:
        ValueError: if ``n_heads`` does not divide ``d_model``, ``n_kv_heads`` does not divide
            ``n_heads``, or ``dropout`` is not in [0, 1).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 fused: bool = False, n_kv_heads: int | None = None) -> None:
        super().__init__()
        n_kv_heads = _check_heads(d_model, n_heads, dropout, n_kv_heads)
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.n_kv_heads, self.grouped = n_kv_heads, n_kv_heads != n_heads
        self.dropout, self.fused = dropout, fused
        d_kv = n_kv_heads * self.d_head  # width of K and V: d_model unless grouped
        self._qkv_sizes = (d_model, d_kv, d_kv)
        if fused:
            self.w_qkv = nn.Linear(d_model, d_model + 2 * d_kv, bias=bias)  # [W^Q; W^K; W^V]
        else:
            self.w_q = nn.Linear(d_model, d_model, bias=bias)  # W^Q for all heads
            self.w_k = nn.Linear(d_model, d_kv, bias=bias)  # W^K
            self.w_v = nn.Linear(d_model, d_kv, bias=bias)  # W^V
        self.w_o = nn.Linear(d_model, d_model, bias=bias)  # W^O
        self.keep_weights = False  # set by record_attention()
        self.last_weights: Tensor | None = None

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if not self.fused:
            return self.w_q(query), self.w_k(key), self.w_v(value)
        if query is key and key is value:  # self-attention: one matrix product
            return self.w_qkv(query).split(self._qkv_sizes, dim=-1)
        return self._fused_part(0, query), self._fused_part(1, key), self._fused_part(2, value)

    def _project_query(self, query: Tensor) -> Tensor:
        return self._fused_part(0, query) if self.fused else self.w_q(query)

    def _fused_part(self, i: int, x: Tensor) -> Tensor:
        """Apply row block ``i`` of ``w_qkv`` (0: W^Q, 1: W^K, 2: W^V)."""
        start = sum(self._qkv_sizes[:i])
        rows = slice(start, start + self._qkv_sizes[i])
        bias = None if self.w_qkv.bias is None else self.w_qkv.bias[rows]
        return F.linear(x, self.w_qkv.weight[rows], bias)

    # --8<-- [start:mha_split_heads]
    def _split_heads(self, x: Tensor) -> Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, -1, self.d_head).transpose(1, 2)  # (B, h or h_kv, seq, d_head)
    # --8<-- [end:mha_split_heads]

    # --8<-- [start:mha_hooks]
    def encode_positions(self, q: Tensor, k: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        """Hook for positions that enter attention itself (RoPE, chapter 15): the paper's
        attention adds none. ``q``: ``(B, h, q_len, d_head)``, ``k``: ``(B, h_kv, q_len,
        d_head)``, the new positions, which start at ``offset`` (the keys already cached)."""
        return q, k

    def _repeat_kv(self, x: Tensor) -> Tensor:
        """Grouped-query attention: ``(B, h_kv, len, d_head)`` → ``(B, h, len, d_head)``, key
        head ``j`` serving query heads ``j·g .. j·g + g - 1`` (``g = h / h_kv``)."""
        groups = self.n_heads // self.n_kv_heads
        return x if groups == 1 else x.repeat_interleave(groups, dim=1)  # (B, h, len, d_head)
    # --8<-- [end:mha_hooks]

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None, *,
                need_weights: bool = False, cache: KVCache | None = None,
                static_kv: bool = False, is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``.

        Args:
            query: ``(batch, q_len, d_model)``.
            key: ``(batch, k_len, d_model)``.
            value: ``(batch, k_len, d_model)``.
            mask: boolean, ``True`` = may attend, broadcastable to
                ``(batch, n_heads, q_len, k_len)`` (``k_len`` counts cached keys too).
            need_weights: also return the weights ``(batch, n_heads, q_len, k_len)``
                (uses the explicit path).
            cache: keys/values of earlier steps; new ones are appended (or, with
                ``static_kv``, computed once and reused).
            static_kv: the keys/values do not change between steps (cross-attention).
            is_causal: instead of ``mask``, the causal mask of a sequence attending to itself
                with no cache (no padding to hide): the fused kernel then skips the future keys
                instead of reading a mask tensor.

        Returns:
            ``(output, weights)``: ``(batch, q_len, d_model)`` and the weights or ``None``.

        Raises:
            ValueError: if the inputs are not ``(batch, seq, d_model)`` with one batch size and
                one key/value length, or ``mask`` is not broadcastable to the scores.
            TypeError: if ``mask`` is not boolean.
        """
        self._check_inputs(query, key, value)
        if is_causal:
            _check_causal(mask, cache, query.shape[1], key.shape[1])
        # --8<-- [start:mha_equation]
        q, k, v = self._project_heads(query, key, value, cache, static_kv)  # QW^Q, KW^K, VW^V
        heads, weights = self._attend(q, k, v, mask, need_weights, is_causal)  # (B, h, q_len, d_v)
        concat = heads.transpose(1, 2).flatten(2)  # Concat(head_1..head_h): (B, q_len, h·d_v)
        return self.w_o(concat), weights  # Concat(...) W^O: (B, q_len, d_model)
        # --8<-- [end:mha_equation]

    def _project_heads(self, query: Tensor, key: Tensor, value: Tensor, cache: KVCache | None,
                       static_kv: bool) -> tuple[Tensor, Tensor, Tensor]:
        """``Q W^Q``, ``K W^K``, ``V W^V`` cut into heads, ``(B, h or h_kv, len, d_head)``; the keys
        and values of a cache come first (or, with ``static_kv``, are the cached ones)."""
        if static_kv and cache is not None and len(cache) > 0:
            q = self._split_heads(self._project_query(query))  # (B, h, q_len, d_head)
            return q, cache.key, cache.value  # computed once, at the first step
        q, k, v = (self._split_heads(t) for t in self._project(query, key, value))
        q, k = self.encode_positions(q, k, offset=0 if cache is None else len(cache))
        if cache is not None and static_kv:
            cache.set(k, v)
        elif cache is not None:
            k, v = cache.append(k, v)  # (B, h, cached + k_len, d_head)
        return q, k, v

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                need_weights: bool, is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """Eq. 1 on every head at once, ``(B, h, q_len, d_head)``: written out when the weights
        are wanted (returned as ``(B, h, q_len, k_len)``), else PyTorch's fused kernel."""
        if mask is not None:  # (batch, heads, q_len, k_len) or broadcastable to it
            _check_mask(mask, (q.shape[0], self.n_heads, q.shape[-2], k.shape[-2]))
        p = self.dropout if self.training else 0.0
        if is_causal and not (need_weights or self.keep_weights):  # no mask tensor at all
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True,
                                                  enable_gqa=self.grouped), None
        if is_causal:  # the explicit path reads a mask
            mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        if need_weights or self.keep_weights:  # the explicit math of eq. 1
            out, weights = scaled_dot_product_attention(q, self._repeat_kv(k), self._repeat_kv(v),
                                                        mask, dropout_p=p)
            if self.keep_weights:
                self.last_weights = weights.detach()
            return out, (weights if need_weights else None)
        if mask is None:  # fused kernel
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p,
                                                  enable_gqa=self.grouped), None
        safe, empty_row = _safe_mask(mask)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe, dropout_p=p,
                                             enable_gqa=self.grouped)
        return out.masked_fill(empty_row, 0.0), None  # rows with no allowed key: zeros

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.shape[-1] != self.d_model:
                raise ValueError(f"{name} must have shape (batch, seq, d_model={self.d_model}), "
                                 f"got {tuple(t.shape)}")
        if not query.shape[0] == key.shape[0] == value.shape[0]:
            raise ValueError("query, key and value must have the same batch size, got "
                             f"{query.shape[0]}, {key.shape[0]}, {value.shape[0]}")
        if key.shape[1] != value.shape[1]:
            raise ValueError(f"key and value must have the same length, got {key.shape[1]} and "
                             f"{value.shape[1]}")
# --8<-- [end:mha_class]


# --8<-- [start:rotary_attention]
class RotaryMultiHeadAttention(MultiHeadAttention):
    """Multi-head attention whose queries and keys are rotated by their positions (RoPE,
    Su et al. 2021; chapter 15), through the :meth:`~MultiHeadAttention.encode_positions` hook.

    ``rotary(x, offset)`` rotates ``(batch, heads, seq, d_head)`` vectors at positions
    ``offset ..`` (:class:`~transformer.embeddings.RotaryEmbedding`). With a KV cache the keys
    are stored rotated, so each new position is rotated once. Meant for self-attention: the
    positions of a query and a key must count along one sequence.

    Args:
        d_model, n_heads, dropout, bias, fused, n_kv_heads: as :class:`MultiHeadAttention`.
        rotary: the rotation (no parameters: a table of angles; each layer of a model gets
            its own).
    """

    def __init__(self, d_model: int, n_heads: int, rotary: Callable[[Tensor, int], Tensor],
                 dropout: float = 0.0, bias: bool = True, fused: bool = False,
                 n_kv_heads: int | None = None) -> None:
        super().__init__(d_model, n_heads, dropout, bias=bias, fused=fused, n_kv_heads=n_kv_heads)
        self.rotary = rotary

    def encode_positions(self, q: Tensor, k: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        """Rotate ``q`` ``(B, h, q_len, d_head)`` and ``k`` ``(B, h_kv, q_len, d_head)``, whose
        first position is ``offset``."""
        return self.rotary(q, offset), self.rotary(k, offset)
# --8<-- [end:rotary_attention]


# --8<-- [start:record_attention]
@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Collect the attention weights of every :class:`MultiHeadAttention` inside ``model``.

    Usage::

        with record_attention(model) as maps:
            model(src, tgt)
        maps["decoder.layers.0.cross_attn"]  # (batch, heads, q_len, k_len)

    The dictionary is filled when the block exits, keyed by module name.
    """
    modules = {n: m for n, m in model.named_modules() if isinstance(m, MultiHeadAttention)}
    for m in modules.values():
        m.keep_weights, m.last_weights = True, None
    maps: dict[str, Tensor] = {}
    try:
        yield maps
    finally:
        for name, m in modules.items():
            if m.last_weights is not None:
                maps[name] = m.last_weights
            m.keep_weights, m.last_weights = False, None
# --8<-- [end:record_attention]
