"""Token embeddings (§3.4) and positional encodings (§3.5) of Vaswani et al. 2017.

This file imports nothing but ``torch`` and the standard library, so it can be copied alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "TokenEmbedding",
    "rotary_tables",
]


_ASYNC_ASSERT_DEVICES = ("cuda", "meta")  # where torch._assert_async has a kernel


def _check_tokens(tokens: Tensor, vocab_size: int) -> None:
    """Type, shape and range checks that never wait for an accelerator.

    The range needs the values of ``tokens``. On the CPU they are at hand, so the check is
    eager and the error names the bad ids. On an accelerator, reading them (``int(t.max())``)
    would stall the host until the device catches up, on every forward. On CUDA (and on the
    "meta" device, which stands in for it in the tests) the check is ``torch._assert_async``:
    queued on the device like any kernel, it fails a later synchronising call instead (with
    the device's message). Devices without that kernel (e.g. MPS) get no range check, and
    neither does ``torch.compile``'s graph.
    """
    if not isinstance(tokens, Tensor):
        raise TypeError(f"tokens must be a tensor of integer ids, got {type(tokens).__name__}")
    if tokens.dtype not in (torch.int64, torch.int32):  # what nn.Embedding accepts
        raise TypeError(f"tokens must hold integer ids (torch.long or torch.int), got dtype "
                        f"{tokens.dtype}")
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (batch, seq), got {tuple(tokens.shape)}")
    if tokens.numel() == 0 or torch.compiler.is_compiling():
        return
    if tokens.device.type == "cpu":  # values in host memory: no device to wait for
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"tokens must hold ids in [0, vocab_size={vocab_size}), got ids "
                             f"in [{lo}, {hi}]")
    elif tokens.device.type in _ASYNC_ASSERT_DEVICES:  # queued on the device: no sync
        in_range = ((tokens >= 0) & (tokens < vocab_size)).all()  # a 0-dim bool tensor
        torch._assert_async(in_range, f"tokens must hold ids in [0, vocab_size={vocab_size})")


# --8<-- [start:token_embedding]
class TokenEmbedding(nn.Module):
    r"""Learned embeddings, multiplied by :math:`\sqrt{d_{model}}` (§3.4).

    "In the embedding layers, we multiply those weights by :math:`\sqrt{d_{model}}`." With the
    weight tied to the pre-softmax projection, the same matrix maps ids to vectors and back.

    Args:
        vocab_size: number of token ids.
        d_model: vector width.
        padding_idx: optional id whose vector is kept at zero and gets no gradient.
    """

    def __init__(self, vocab_size: int, d_model: int, padding_idx: int | None = None) -> None:
        super().__init__()
        if vocab_size <= 0 or d_model <= 0:
            raise ValueError(f"vocab_size and d_model must be positive, got {vocab_size}, "
                             f"{d_model}")
        self.vocab_size, self.d_model = vocab_size, d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        self.scale = math.sqrt(d_model)

    @property
    def weight(self) -> Tensor:
        """The ``(vocab_size, d_model)`` embedding matrix."""
        return self.embedding.weight

    def forward(self, tokens: Tensor) -> Tensor:
        """Map ``(batch, seq)`` integer ids to ``(batch, seq, d_model)`` vectors.

        Raises:
            TypeError: if ``tokens`` is not a tensor of ``torch.long`` or ``torch.int`` ids.
            ValueError: if ``tokens`` is not 2-D, or, for a CPU tensor, an id is outside
                ``[0, vocab_size)``. On CUDA an out-of-range id fails asynchronously, without
                a host synchronisation on every call.
        """
        _check_tokens(tokens, self.vocab_size)
        return self.embedding(tokens) * self.scale  # (batch, seq, d_model)
# --8<-- [end:token_embedding]


# --8<-- [start:sinusoidal]
def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    r"""The table of §3.5: :math:`PE_{(pos, 2i)} = \sin(pos / 10000^{2i/d_{model}})`,
    :math:`PE_{(pos, 2i+1)} = \cos(pos / 10000^{2i/d_{model}})`.

    Returns:
        ``(max_len, d_model)`` float tensor.
    """
    if d_model % 2 != 0:
        raise ValueError(f"d_model must be even for sinusoidal positions, got {d_model}")
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d_model / 2,)
    angle = pos / 10000 ** (two_i / d_model)  # (max_len, d_model / 2)
    table = torch.empty(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)  # even dimensions
    table[:, 1::2] = torch.cos(angle)  # odd dimensions
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table to the embeddings (§3.5).

    "We chose this function because we hypothesized it would allow the model to easily learn
    to attend by relative positions, since for any fixed offset k, PE_{pos+k} can be
    represented as a linear function of PE_{pos}."

    Args:
        d_model: vector width (even).
        max_len: longest sequence supported.
    """

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Return ``x + PE[offset : offset + seq]`` for ``x`` of shape ``(batch, seq, d_model)``."""
        _check_positions(x, self.d_model, self.max_len, offset)
        table: Tensor = self.table  # type: ignore[assignment]
        return x + table[offset: offset + x.shape[1]].to(x.dtype)  # broadcast over batch
# --8<-- [end:sinusoidal]


# --8<-- [start:learned_positions]
class LearnedPositionalEmbedding(nn.Module):
    """A learned vector per position, the alternative of §3.5 (Table 3, row E).

    "We also experimented with using learned positional embeddings instead, and found that
    the two versions produced nearly identical results."
    """

    def __init__(self, d_model: int, max_len: int = 512) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Return ``x`` ``(batch, seq, d_model)`` plus the vectors of positions
        ``offset .. offset + seq - 1``."""
        _check_positions(x, self.d_model, self.max_len, offset)
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)  # (seq,)
        return x + self.embedding(positions)  # (batch, seq, d_model)
# --8<-- [end:learned_positions]


# --8<-- [start:rotary]
def rotary_tables(max_len: int, d_head: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    r"""Cosines and sines of the RoPE angles :math:`m\,\theta_i`, with
    :math:`\theta_i = \text{base}^{-2i/d_{head}}` (RoFormer, Su et al. 2021, §3.2.2): the
    wavelengths of the sinusoidal table of §3.5, now per head.

    Returns:
        ``(cos, sin)``, each ``(max_len, d_head / 2)``, computed in float64.
    """
    if d_head % 2 != 0:
        raise ValueError(f"d_head must be even for rotary positions, got {d_head}")
    theta = base ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)  # (d_head/2,)
    angle = torch.arange(max_len, dtype=torch.float64)[:, None] * theta  # (max_len, d_head/2)
    return angle.cos(), angle.sin()


class RotaryEmbedding(nn.Module):
    r"""Rotary position embedding (RoPE; Su et al. 2021, RoFormer, §3.2.2).

    Rotates each pair :math:`(x_{2i}, x_{2i+1})` of a query or key at position :math:`m` by the
    angle :math:`m\theta_i`. Then :math:`\langle R_m q, R_n k\rangle` depends on :math:`m - n`
    only: attention sees relative positions, and nothing is added to the embeddings.

    Pairs are *interleaved*, as in the paper; Hugging Face's LLaMA pairs feature :math:`i` with
    :math:`i + d_{head}/2` ("rotate half"). The two agree after the permutation that puts the
    even features first and the odd ones after (chapter 15 checks it).

    The tables are computed in float64 and stored, as buffers that are not saved, in
    ``dtype`` (torch's default, float32, unless given): ``model.double()`` then holds float32
    tables in float64, while ``dtype=torch.float64`` keeps every digit.

    Args:
        d_head: the width of one head (even).
        max_len: longest sequence supported.
        base: the base of the wavelengths (10000, as §3.5).
        dtype: the dtype of the stored tables.
    """

    def __init__(self, d_head: int, max_len: int = 5000, base: float = 10000.0,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.d_head, self.max_len, self.base = d_head, max_len, base
        cos, sin = rotary_tables(max_len, d_head, base)
        dtype = dtype or torch.get_default_dtype()
        self.register_buffer("cos", cos.to(dtype), persistent=False)  # (max_len, d_head/2)
        self.register_buffer("sin", sin.to(dtype), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate ``x`` ``(batch, heads, seq, d_head)`` at positions ``offset .. offset + seq -
        1``; same shape out.

        Raises:
            ValueError: if ``x`` is not ``(..., seq, d_head)`` or the positions pass ``max_len``.
        """
        _check_rotary(x, self.d_head, self.max_len, offset)
        seq = x.shape[-2]
        cos = self.cos[offset: offset + seq].to(x.dtype)  # (seq, d_head/2)
        sin = self.sin[offset: offset + seq].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., seq, d_head/2): the pairs
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (..., 2)
        return rotated.flatten(-2)  # (..., seq, d_head), pairs interleaved again
# --8<-- [end:rotary]


def _check_rotary(x: Tensor, d_head: int, max_len: int, offset: int) -> None:
    if x.dim() < 2 or x.shape[-1] != d_head:
        raise ValueError(f"x must have shape (..., seq, d_head={d_head}), got {tuple(x.shape)}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if offset + x.shape[-2] > max_len:
        raise ValueError(f"sequence too long: x has seq={x.shape[-2]} at offset={offset}, "
                         f"needing positions 0..{offset + x.shape[-2] - 1}, but max_len={max_len}")


def _check_positions(x: Tensor, d_model: int, max_len: int, offset: int) -> None:
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"x must have shape (batch, seq, d_model={d_model}), got "
                         f"{tuple(x.shape)}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if offset + x.shape[1] > max_len:
        raise ValueError(f"sequence too long: x has seq={x.shape[1]} at offset={offset}, needing "
                         f"positions 0..{offset + x.shape[1] - 1}, but max_len={max_len}")
