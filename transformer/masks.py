"""Attention masks: padding and look-ahead (Vaswani et al. 2017, §3.2.3).

**The one mask convention of this package.** A mask is a boolean tensor where ``True`` means
"this query may attend to this key". It is broadcastable to ``(batch, heads, q_len, k_len)``:

- :func:`padding_mask` gives ``(batch, 1, 1, k_len)`` — hide padding *keys* from every query;
- :func:`causal_mask` gives ``(1, 1, q_len, k_len)`` — hide the future (§3.2.3: "prevent
  leftward information flow in the decoder");
- the two combine with ``&``: ``padding_mask(tgt, pad) & causal_mask(tgt.size(1))``;
  :func:`decoder_mask` builds that default of decoder self-attention, also with a KV cache.

A query row in which no key is allowed produces a zero vector, never NaN.

PyTorch's own modules use the opposite sense (``True`` = *ignore*) and split the mask in two
arguments; :func:`to_torch_masks` converts ours to theirs, and is what the equivalence tests use.

This file imports nothing but ``torch``, so it can be copied on its own.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["causal_mask", "decoder_mask", "padding_mask", "to_torch_masks"]


# --8<-- [start:padding_mask]
def padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """Mask that hides padding keys: ``True`` where ``tokens != pad_id`` (§3.2.3).

    Args:
        tokens: ``(batch, seq)`` integer token ids.
        pad_id: the id used for padding.

    Returns:
        ``(batch, 1, 1, seq)`` boolean mask, broadcastable over heads and queries.

    Raises:
        ValueError: if ``tokens`` is not 2-D.
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (batch, seq), got {tuple(tokens.shape)}")
    return (tokens != pad_id)[:, None, None, :]  # (batch, 1, 1, seq)
# --8<-- [end:padding_mask]


# --8<-- [start:causal_mask]
def causal_mask(q_len: int, k_len: int | None = None, device: torch.device | str | None = None
                ) -> Tensor:
    """Look-ahead mask: query ``i`` may attend to keys ``0 .. i`` (§3.2.3).

    When ``k_len > q_len`` the queries are the *last* ``q_len`` positions of a sequence of
    length ``k_len`` (decoding with a KV cache): query ``i`` sees keys ``j <= i + k_len - q_len``.

    Args:
        q_len: number of queries (>= 1).
        k_len: number of keys (>= ``q_len``); defaults to ``q_len``.
        device: where to create the mask.

    Returns:
        ``(1, 1, q_len, k_len)`` boolean mask, lower-triangular when ``q_len == k_len``.

    Raises:
        ValueError: unless ``1 <= q_len <= k_len``.
    """
    k_len = q_len if k_len is None else k_len
    if q_len < 1 or k_len < q_len:
        raise ValueError(f"causal_mask needs 1 <= q_len <= k_len, got q_len={q_len}, k_len={k_len}")
    offset = k_len - q_len
    mask = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=offset)
    return mask[None, None]  # (1, 1, q_len, k_len)
# --8<-- [end:causal_mask]


# --8<-- [start:decoder_mask]
def decoder_mask(tokens: Tensor, pad_id: int, cache_len: int | None = None) -> Tensor:
    """The default mask of decoder self-attention: no future key and no padding key (§3.2.3).

    Both models use it when no mask is given: :class:`~transformer.model.Transformer` for its
    ``tgt_mask``, :class:`~transformer.model.DecoderOnlyTransformer` for its ``mask``.

    Args:
        tokens: ``(batch, seq)`` token ids of the queries (the new ones, with a cache).
        pad_id: the id used for padding.
        cache_len: ``None`` without a KV cache; else the number of positions already cached,
            which the ``seq`` queries follow.

    Returns:
        Without a cache, ``padding_mask & causal_mask``: ``(batch, 1, seq, seq)``. With a cache,
        only the causal part, ``(1, 1, seq, cache_len + seq)``: the cache does not record which
        of its keys were padding, so cached decoding expects sequences without padding.

    Raises:
        ValueError: if ``tokens`` is not 2-D with ``seq >= 1``, or ``cache_len < 0``.
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (batch, seq), got {tuple(tokens.shape)}")
    if cache_len is not None and cache_len < 0:
        raise ValueError(f"cache_len must be None or >= 0, got {cache_len}")
    seq = tokens.shape[1]
    if cache_len is not None:
        return causal_mask(seq, cache_len + seq, tokens.device)  # (1, 1, seq, cache_len + seq)
    return padding_mask(tokens, pad_id) & causal_mask(seq, device=tokens.device)  # (B, 1, T, T)
# --8<-- [end:decoder_mask]


# --8<-- [start:to_torch_masks]
def to_torch_masks(mask: Tensor | None, n_heads: int = 1) -> tuple[Tensor | None, Tensor | None]:
    """Convert one of our masks to PyTorch's ``(key_padding_mask, attn_mask)`` pair.

    PyTorch's ``nn.MultiheadAttention`` and ``nn.Transformer*`` take ``True`` = *ignore*:
    ``key_padding_mask`` of shape ``(batch, k_len)`` and ``attn_mask`` of shape
    ``(q_len, k_len)`` or ``(batch * heads, q_len, k_len)``.

    Args:
        mask: our boolean mask (``True`` = may attend), broadcastable to
            ``(batch, heads, q_len, k_len)``, or ``None``.
        n_heads: the number of heads, used when the mask must be expanded per batch element.

    Returns:
        ``(key_padding_mask, attn_mask)``; either may be ``None``. A ``(batch, 1, 1, k_len)``
        padding mask becomes a ``key_padding_mask``; a ``(1, 1, q_len, k_len)`` mask becomes a
        2-D ``attn_mask``; anything else becomes a 3-D ``attn_mask``.

    Raises:
        TypeError: if ``mask`` is not boolean.
        ValueError: if ``mask`` is not 4-D.
    """
    if mask is None:
        return None, None
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean tensor (True = may attend), got {mask.dtype}")
    if mask.dim() != 4:
        raise ValueError("mask must have 4 dims (batch, heads, q_len, k_len), got shape "
                         f"{tuple(mask.shape)}")
    batch, heads, q_len, k_len = mask.shape
    if heads == 1 and q_len == 1:  # pure key padding
        return ~mask[:, 0, 0, :], None  # (batch, k_len)
    if batch == 1 and heads == 1:  # the same for every sequence, e.g. causal
        return None, ~mask[0, 0]  # (q_len, k_len)
    full = mask.expand(batch, n_heads, q_len, k_len)
    return None, ~full.reshape(batch * n_heads, q_len, k_len)
# --8<-- [end:to_torch_masks]
