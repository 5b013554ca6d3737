"""Table 1 of the paper (§4, "Why Self-Attention"), computed and measured: what one layer of
self-attention, recurrence, convolution and restricted self-attention costs on a sequence of
``n`` vectors of width ``d``.

Three things per layer, as in the table:

- **complexity per layer**: multiply-accumulates (MACs), counted by :func:`macs` from the
  shapes of the matrix products each layer does (the paper keeps the leading term,
  :func:`paper_term`);
- **sequential operations**: the longest chain of steps inside one layer that must run one after
  another (:func:`sequential_operations`: a recurrence's hidden state waits for the previous one);
- **maximum path length**: how many hops connect the first input position with the last output
  position in a stack of such layers (:func:`maximum_path_length`, found by walking the layers'
  dependency graphs, not by formula).

:func:`measure` times one layer against ``n`` and counts the bytes it keeps for the backward pass;
the book's chapter "Why self-attention" draws the result at build time.

:class:`RestrictedSelfAttention` computes only the ``r`` scores of each query's neighbourhood;
the chapter and tests/test_complexity.py check it against
:class:`transformer.attention.MultiHeadAttention` with :func:`band_mask`. The model never uses
this module: it is the measuring bench of §4.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer.attention import MultiHeadAttention

__all__ = [
    "LAYERS",
    "PAPER_TABLE1",
    "Measurement",
    "RestrictedSelfAttention",
    "Row",
    "band_mask",
    "build_layer",
    "dependency_graphs",
    "macs",
    "maximum_path_length",
    "measure",
    "paper_term",
    "sequential_operations",
]

LAYERS = ("self-attention", "recurrent", "convolutional", "restricted self-attention")


@dataclass(frozen=True)
class Row:
    """One row of the paper's Table 1, as printed (TeX)."""

    layer: str
    complexity: str
    sequential: str
    path: str


PAPER_TABLE1 = (
    Row("self-attention", r"O(n^2 \cdot d)", "O(1)", "O(1)"),
    Row("recurrent", r"O(n \cdot d^2)", "O(n)", "O(n)"),
    Row("convolutional", r"O(k \cdot n \cdot d^2)", "O(1)", r"O(\log_k(n))"),
    Row("restricted self-attention", r"O(r \cdot n \cdot d)", "O(1)", "O(n/r)"),
)


def _check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")


def paper_term(layer: str, n: int, d: int, k: int = 3, r: int = 9) -> int:
    """The term Table 1 keeps for ``layer``'s complexity: ``n²d``, ``nd²``, ``knd²`` or ``rnd``.

    Raises:
        ValueError: if ``layer`` is not one of :data:`LAYERS`.
    """
    _check_layer(layer)
    return {"self-attention": n * n * d, "recurrent": n * d * d,
            "convolutional": k * n * d * d, "restricted self-attention": r * n * d}[layer]


def macs(layer: str, n: int, d: int, k: int = 3, r: int = 9) -> int:
    """Multiply-accumulates of one layer of :func:`build_layer` on ``n`` positions of width ``d``.

    - self-attention: ``4nd²`` for the projections W^Q, W^K, W^V, W^O, ``2n²d`` for
      ``QKᵀ`` and the weighted sum of the values (whatever the number of heads);
    - recurrent (an LSTM): 4 gates, each a ``d × d`` product with the input and one with the
      previous hidden state, at each of the ``n`` steps: ``8nd²``;
    - convolutional: a kernel of width ``k`` maps ``k·d`` inputs to ``d`` outputs: ``knd²``;
    - restricted self-attention: the projections, and ``r`` keys per query: ``4nd² + 2rnd``.

    Raises:
        ValueError: if ``layer`` is not one of :data:`LAYERS`.
    """
    _check_layer(layer)
    return {"self-attention": 4 * n * d * d + 2 * n * n * d, "recurrent": 8 * n * d * d,
            "convolutional": k * n * d * d,
            "restricted self-attention": 4 * n * d * d + 2 * r * n * d}[layer]


def band_mask(n: int, r: int) -> Tensor:
    """``(n, n)`` boolean mask, ``True`` where ``|i - j| <= (r - 1) / 2``: each query sees the
    neighbourhood of ``r`` positions centred on it (fewer at the ends of the sequence).

    Raises:
        ValueError: if ``r`` is not a positive odd integer or ``n`` is not positive.
    """
    if n <= 0 or r <= 0 or r % 2 == 0:
        raise ValueError(f"n must be positive and r a positive odd integer, got n={n}, r={r}")
    i = torch.arange(n)
    return (i[:, None] - i[None, :]).abs() <= (r - 1) // 2


def _windows(x: Tensor, r: int) -> Tensor:
    """``(B, h, n, d)`` → ``(B, h, n, r, d)``: row ``i`` holds positions ``i - (r-1)/2 ..
    i + (r-1)/2`` (zeros beyond the ends)."""
    half = (r - 1) // 2
    padded = F.pad(x, (0, 0, half, half))  # (B, h, n + r - 1, d)
    return padded.unfold(-2, r, 1).transpose(-1, -2)  # (B, h, n, r, d)


class RestrictedSelfAttention(nn.Module):
    """Self-attention restricted to a neighbourhood of ``r`` positions (§4): the projections of
    :class:`~transformer.attention.MultiHeadAttention` (same parameter names, so a state dict
    moves between the two), but each query scores only its ``r`` neighbours, ``r·n·d`` work
    instead of ``n²·d``.

    Args:
        d_model: model width.
        n_heads: number of heads; must divide ``d_model``.
        r: neighbourhood size, odd.

    Raises:
        ValueError: if ``n_heads`` does not divide ``d_model`` or ``r`` is not odd and positive.
    """

    def __init__(self, d_model: int, n_heads: int, r: int) -> None:
        super().__init__()
        if d_model <= 0 or n_heads <= 0 or d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a positive multiple of n_heads "
                             f"({n_heads})")
        if r <= 0 or r % 2 == 0:
            raise ValueError(f"r must be a positive odd integer, got {r}")
        self.d_model, self.n_heads, self.d_head, self.r = d_model, n_heads, d_model // n_heads, r
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.w_o = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, n, d_model)`` → ``(batch, n, d_model)``."""
        batch, n, _ = x.shape
        q, k, v = (w(x).view(batch, n, self.n_heads, self.d_head).transpose(1, 2)
                   for w in (self.w_q, self.w_k, self.w_v))  # (B, h, n, d_head)
        k, v = _windows(k, self.r), _windows(v, self.r)  # (B, h, n, r, d_head)
        scores = (q.unsqueeze(-2) @ k.transpose(-1, -2)).squeeze(-2)  # (B, h, n, r)
        scores = scores / math.sqrt(self.d_head)
        inside = _windows(torch.ones(1, 1, n, 1, device=x.device), self.r)[..., 0] > 0
        weights = scores.masked_fill(~inside, float("-inf")).softmax(-1)  # (B, h, n, r)
        out = (weights.unsqueeze(-2) @ v).squeeze(-2)  # (B, h, n, d_head)
        return self.w_o(out.transpose(1, 2).reshape(batch, n, self.d_model))


class _SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, explicit: bool) -> None:
        super().__init__()
        self.attention, self.explicit = MultiHeadAttention(d, heads), explicit

    def forward(self, x: Tensor) -> Tensor:
        return self.attention(x, x, x, need_weights=self.explicit)[0]


class _Recurrent(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d, d, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.lstm(x)[0]


class _Convolutional(nn.Module):
    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d, d, k, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, n, d)


def build_layer(layer: str, d: int, *, heads: int = 4, k: int = 3, r: int = 9,
                explicit: bool = True) -> nn.Module:
    """One layer ``(batch, n, d)`` → ``(batch, n, d)`` of the kind named by ``layer``: our
    :class:`~transformer.attention.MultiHeadAttention` (``explicit``: eq. 1 written out, which
    stores the ``n × n`` weights; else the fused kernel), ``nn.LSTM``, ``nn.Conv1d`` of width
    ``k``, or :class:`RestrictedSelfAttention` with neighbourhood ``r``.

    Raises:
        ValueError: if ``layer`` is not one of :data:`LAYERS`.
    """
    _check_layer(layer)
    if layer == "self-attention":
        return _SelfAttention(d, heads, explicit)
    if layer == "recurrent":
        return _Recurrent(d)
    if layer == "convolutional":
        return _Convolutional(d, k)
    return RestrictedSelfAttention(d, heads, r)


def dependency_graphs(layer: str, n: int, n_layers: int, k: int = 3,
                      r: int = 9) -> Iterator[Tensor]:
    """For a stack of ``n_layers`` layers, yield one ``(n, n)`` boolean matrix per *hop*: entry
    ``[i, j]`` is ``True`` when position ``i`` after the hop reads position ``j`` before it.

    A hop of a recurrence is one time step (``h_t`` reads ``h_{t-1}`` and ``x_t``), so one layer
    of it is ``n`` hops; the other layers are one hop each. Convolutions are dilated as in
    ByteNet/WaveNet (layer ``l`` has dilation ``k^l``), the case of the paper's ``log_k(n)``.

    Raises:
        ValueError: if ``layer`` is not one of :data:`LAYERS`.
    """
    _check_layer(layer)
    i = torch.arange(n)
    offset = i[:, None] - i[None, :]  # i - j
    for depth in range(n_layers):
        if layer == "self-attention":
            yield torch.ones(n, n, dtype=torch.bool)  # every query reads every key
        elif layer == "recurrent":
            for _ in range(n):  # n time steps, one after another
                yield (offset == 0) | (offset == 1)
        elif layer == "restricted self-attention":
            yield band_mask(n, r)
        else:
            dilation = k ** min(depth, math.ceil(math.log(n, k)))  # beyond n: no new taps
            # causal: position i reads i, i - dilation, ..., i - (k-1)·dilation
            yield (offset % dilation == 0) & (offset >= 0) & (offset // dilation < k)


def maximum_path_length(layer: str, n: int, k: int = 3, r: int = 9) -> int:
    """Fewest hops through a stack of ``layer`` that connect input position 0 to output position
    ``n - 1``, the farthest pair (found by multiplying the hops' dependency matrices until the
    pair is connected).

    Raises:
        ValueError: if ``layer`` is not one of :data:`LAYERS` or ``n`` is below 2.
    """
    _check_layer(layer)
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    reach = torch.eye(n, dtype=torch.bool)  # reach[i, j]: output i depends on input j
    for hops, graph in enumerate(dependency_graphs(layer, n, n_layers=n, k=k, r=r), start=1):
        reach = (graph.float() @ reach.float()) > 0
        if reach[n - 1, 0]:
            return hops
    raise AssertionError("unreachable: n layers always connect the two ends")


def sequential_operations(layer: str, n: int) -> int:
    """Steps of one layer that must run one after another: the hops of a single layer
    (:func:`dependency_graphs` with ``n_layers=1``) — ``n`` for a recurrence, 1 for the others.

    Raises:
        ValueError: if ``layer`` is not one of :data:`LAYERS`.
    """
    return sum(1 for _ in dependency_graphs(layer, n, n_layers=1))


@dataclass(frozen=True)
class Measurement:
    """One layer at one length: ``seconds`` of a forward pass (best of the repeats) and
    ``saved_bytes``, what autograd keeps for the backward pass (activations, not weights)."""

    layer: str
    n: int
    seconds: float
    saved_bytes: int


def _saved_bytes(module: nn.Module, x: Tensor) -> int:
    weights = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x.requires_grad_(True))
    return sum(storages.values())


def measure(layers: Mapping[str, Callable[[], nn.Module]], ns: Iterable[int], d: int, *,
            repeats: int = 3, seed: int = 0) -> list[Measurement]:
    """Time one forward pass of each layer on a ``(1, n, d)`` input for each ``n``, and count the
    bytes it saves for backward.

    Args:
        layers: ``{name: constructor}``, each constructor returning a module ``(1, n, d)`` →
            ``(1, n, d)``.
        ns: sequence lengths.
        d: model width.
        repeats: timed forward passes per point; the fastest counts (after one warm-up).
        seed: seed of the random inputs and weights.

    Returns:
        One :class:`Measurement` per layer and length, in the order given. The layers run on one
        CPU thread (restored afterwards): small layers measured on several threads mostly time
        the threads waiting for each other, or for the machine's other processes.
    """
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(layers, ns, d, repeats)
    finally:
        torch.set_num_threads(threads)


def _measure(layers: Mapping[str, Callable[[], nn.Module]], ns: Iterable[int], d: int,
             repeats: int) -> list[Measurement]:
    ns = list(ns)
    results = []
    for name, build in layers.items():
        module = build().eval()
        for n in ns:
            x = torch.randn(1, n, d)
            saved = _saved_bytes(module, x.clone())
            with torch.no_grad():
                module(x)  # warm-up
                best = math.inf
                for _ in range(repeats):
                    start = time.perf_counter()
                    module(x)
                    best = min(best, time.perf_counter() - start)
            results.append(Measurement(name, n, best, saved))
    return results
