"""Looking inside a model (chapter 14): attention maps of every layer and head, their entropy,
induction scores, nearest neighbours in embedding space, and plots of attention, positional
encodings and learning-rate schedules.

The measuring functions need torch only. The drawing functions (``plot_*`` and
:func:`attention_heatmap`) need matplotlib, the ``viz`` extra
(``pip install "executable-transformer[viz]"``), imported when one is first called; they
return the figure (or image) and never show or save it. ``import transformer`` does not import
this module.

Every attention tensor here is batch first and stacks the layers:
``(batch, layers, heads, q_len, k_len)``; one example, ``maps["cross"][0]``, is
``(layers, heads, q_len, k_len)``. Layers and heads are numbered from 0, as in the code
(``maps["cross"][0, 1, 3]`` is layer 1, head 3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn

from transformer.attention import record_attention
from transformer.model import DecoderOnlyTransformer, Transformer

if TYPE_CHECKING:  # matplotlib is optional: only the type checker imports it here
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

__all__ = [
    "ATTENTION_KINDS",
    "Neighbours",
    "attention_entropy",
    "attention_heatmap",
    "attention_maps",
    "induction_scores",
    "nearest_neighbours",
    "neighbours_table",
    "plot_attention",
    "plot_attention_entropy",
    "plot_learning_rate",
    "plot_positional_encoding",
]

ATTENTION_KINDS = {  # the keys of attention_maps and what each holds
    "encoder": "encoder self-attention: (batch, layers, heads, src_len, src_len)",
    "decoder": "decoder (masked) self-attention: (batch, layers, heads, tgt_len, tgt_len); "
               "the only kind of a DecoderOnlyTransformer, whose tokens are its src",
    "cross": "encoder-decoder attention: (batch, layers, heads, tgt_len, src_len)",
}
_MASKED = "#d9d9d9"  # a cell the mask forbids: weight exactly 0


# ---------------------------------------------------------------- measuring (torch only)

def _attention_modules(model: nn.Module) -> dict[str, list[str]]:
    """The names of the attention modules of each kind, layer by layer."""
    if isinstance(model, Transformer):
        return {
            "encoder": [f"encoder.layers.{i}.self_attn" for i in range(len(model.encoder.layers))],
            "decoder": [f"decoder.layers.{i}.self_attn" for i in range(len(model.decoder.layers))],
            "cross": [f"decoder.layers.{i}.cross_attn" for i in range(len(model.decoder.layers))],
        }
    if isinstance(model, DecoderOnlyTransformer):
        return {"decoder": [f"layers.{i}.self_attn" for i in range(len(model.layers))]}
    raise TypeError(f"model must be a Transformer or a DecoderOnlyTransformer, got "
                    f"{type(model).__name__}")


# --8<-- [start:attention_maps]
def attention_maps(model: nn.Module, src: Tensor, tgt: Tensor | None = None,
                   **masks: Tensor) -> dict[str, Tensor]:
    """The attention weights of every layer and head of one forward pass, by kind.

    Built on :func:`~transformer.attention.record_attention`: one forward pass in eval mode
    (no dropout) and without gradients; the model's training mode is restored afterwards.

    Args:
        model: a :class:`~transformer.model.Transformer` or a
            :class:`~transformer.model.DecoderOnlyTransformer`.
        src: ``(batch, src_len)`` source ids, or the tokens of a decoder-only model.
        tgt: ``(batch, tgt_len)`` decoder input of a Transformer (``BOS`` + target: teacher
            forcing); must be None for a decoder-only model.
        masks: passed to the forward pass (``src_mask``, ``tgt_mask``, ``memory_mask`` of a
            Transformer, ``mask`` of a decoder-only model); the model's defaults otherwise
            (padding hidden, future hidden in the decoder).

    Returns:
        ``{kind: (batch, layers, heads, q_len, k_len)}``, the kinds of
        :data:`ATTENTION_KINDS`: ``"encoder"``, ``"decoder"`` and ``"cross"`` for a
        Transformer, ``"decoder"`` for a decoder-only model. Keys a mask hides have weight 0.

    Raises:
        TypeError: another kind of model, or a mask the model's forward does not take.
        ValueError: ``tgt`` missing for a Transformer or given to a decoder-only model, and
            whatever the model's forward raises for bad ids or masks.
    """
    names = _attention_modules(model)
    if isinstance(model, Transformer):
        if tgt is None:
            raise ValueError("tgt is required for a Transformer: the decoder input "
                             "(batch, tgt_len), e.g. BOS + target")
        inputs, allowed = (src, tgt), {"src_mask", "tgt_mask", "memory_mask"}
    else:
        if tgt is not None:
            raise ValueError("a DecoderOnlyTransformer reads one sequence: pass its tokens as "
                             f"src and no tgt, got tgt of shape {tuple(tgt.shape)}")
        inputs, allowed = (src,), {"mask"}
    if not masks.keys() <= allowed:
        raise TypeError(f"masks must be among {sorted(allowed)} for a {type(model).__name__}, "
                        f"got {sorted(masks)}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), record_attention(model) as recorded:
            model(*inputs, **masks)
    finally:
        model.train(was_training)
    return {kind: torch.stack([recorded[name] for name in layers], dim=1)  # (B, L, h, q, k)
            for kind, layers in names.items()}
# --8<-- [end:attention_maps]


def _check_weights(weights: Tensor, name: str = "weights") -> None:
    if not isinstance(weights, Tensor) or not weights.is_floating_point() or weights.dim() < 4:
        got = (f"{weights.dtype} tensor of shape {tuple(weights.shape)}"
               if isinstance(weights, Tensor) else type(weights).__name__)
        raise ValueError(f"{name} must be a float tensor (..., layers, heads, q_len, k_len) "
                         f"of attention weights, got {got}")
    sums = weights.sum(dim=-1)  # (..., q_len): 1, or 0 for a row with no allowed key
    distributions = (weights >= 0).all() and ((sums - 1).abs() < 1e-3).logical_or(
        sums.abs() < 1e-6).all()
    if not distributions:
        raise ValueError(f"{name} must hold attention weights: rows of non-negative numbers "
                         f"summing to 1 (or all 0 where no key is allowed), got row sums from "
                         f"{sums.min().item():.4g} to {sums.max().item():.4g} and a smallest "
                         f"weight of {weights.min().item():.4g}")


# --8<-- [start:attention_entropy]
def attention_entropy(weights: Tensor, *, queries: Tensor | None = None) -> Tensor:
    r"""Mean entropy :math:`H = -\sum_j \alpha_j \log \alpha_j` (nats) of the attention rows
    of each layer and head: ``log(k)`` for a head that spreads evenly over ``k`` keys, 0 for
    one that looks at a single key.

    Masked keys: a key the mask hides has weight exactly 0 and adds nothing
    (:math:`0 \log 0 = 0`), so a row's entropy is that of its distribution over the keys it
    may see, at most the log of their number (a causal row ``i`` sees ``i + 1`` keys). A row
    with no allowed key is all zeros (the mask convention of ``masks.py``), no distribution,
    and is left out of the mean, as are the rows ``queries`` leaves out (padded queries).

    Args:
        weights: ``(..., layers, heads, q_len, k_len)``, e.g. an :func:`attention_maps` value
            ``(batch, layers, heads, q_len, k_len)`` or one example of it.
        queries: optional boolean ``(..., q_len)`` (the leading dimensions of ``weights``):
            which query rows count, e.g. ``tgt != pad_id``.

    Returns:
        ``(layers, heads)``: the mean over the counted rows of every example.

    Raises:
        ValueError: ``weights`` is not a float tensor of at least 4 dimensions whose rows are
            distributions (or zeros), ``queries`` does not fit, or no row is counted.
    """
    _check_weights(weights)
    counted = weights.sum(dim=-1) > 0.5  # (..., layers, heads, q_len): rows with a key
    if queries is not None:
        expected = (*weights.shape[:-4], weights.shape[-2])
        if queries.dtype != torch.bool or queries.shape != expected:
            raise ValueError(f"queries must be a bool tensor of shape {expected} (the leading "
                             f"dimensions of weights and q_len), got {queries.dtype} "
                             f"{tuple(queries.shape)}")
        counted = counted & queries[..., None, None, :]
    entropy = -torch.special.xlogy(weights, weights).sum(dim=-1)  # (..., L, h, q): 0 log 0 = 0
    lead = tuple(range(weights.dim() - 4))  # batch dimensions, if any
    n = counted.sum(dim=(*lead, -1))  # (layers, heads)
    if (n == 0).any():
        raise ValueError("no attention row to average: every row is masked or left out by "
                         "queries")
    return (entropy * counted).sum(dim=(*lead, -1)) / n
# --8<-- [end:attention_entropy]


# --8<-- [start:induction_scores]
def induction_scores(weights: Tensor, half: Tensor | int) -> Tensor:
    """How much each head attends to the token *after the previous occurrence of the current
    token*, in sequences whose second half repeats the first (Olsson et al., 2022).

    In ``x_0 .. x_{T-1} x_0 .. x_{T-1}`` the query at position ``i >= T`` holds
    ``x_{i-T}``, whose previous occurrence is at ``i - T``: an induction head attends to
    ``i - T + 1``, where the token to predict next stands. The score of a head is its mean
    weight there over the queries ``T <= i <= 2T - 2`` (those whose next token is in the
    second half): 1 for a perfect induction head, about ``1 / (i + 1)`` for a uniform one.

    Args:
        weights: ``(batch, layers, heads, seq, seq)`` self-attention of a decoder-only model
            (``attention_maps(model, tokens)["decoder"]``).
        half: the half length ``T`` of each row, ``(batch,)`` integers (or one integer), at
            least 2 and with ``2T - 1 <= seq``.

    Returns:
        ``(layers, heads)`` scores in ``[0, 1]``.

    Raises:
        ValueError: ``weights`` is not 5-D attention weights with square maps, or ``half``
            does not fit it.
    """
    _check_weights(weights)
    if weights.dim() != 5 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be self-attention (batch, layers, heads, seq, seq), "
                         f"got shape {tuple(weights.shape)}")
    batch, seq = weights.shape[0], weights.shape[-1]
    half = torch.as_tensor(half, device=weights.device).expand(batch)  # (batch,)
    if half.is_floating_point() or (half < 2).any() or (2 * half - 1 > seq).any():
        raise ValueError(f"half must hold integers T with 2 <= T and 2T - 1 <= seq={seq}, "
                         f"got {half.tolist()}")
    pos = torch.arange(seq, device=weights.device)  # (seq,)
    second = (pos >= half[:, None]) & (pos <= 2 * half[:, None] - 2)  # (batch, seq)
    rows, queries = second.nonzero(as_tuple=True)  # one entry per scored query
    keys = queries - half[rows] + 1  # the token after the previous occurrence
    return weights[rows, :, :, queries, keys].mean(dim=0)  # (n, L, h) -> (layers, heads)
# --8<-- [end:induction_scores]


class Neighbours(NamedTuple):
    """The ``k`` nearest tokens: ``ids`` ``(k,)`` long, nearest first, and their ``scores``
    ``(k,)``: cosine similarities (descending) or Euclidean distances (ascending)."""

    ids: Tensor
    scores: Tensor


_METRICS = ("cosine", "euclidean")


# --8<-- [start:nearest_neighbours]
def nearest_neighbours(embedding_weight: Tensor, token_id: int, k: int = 5,
                       metric: str = "cosine", *, exclude: Sequence[int] = ()) -> Neighbours:
    """The ``k`` tokens whose embedding vectors are nearest to ``token_id``'s.

    Args:
        embedding_weight: ``(vocab, d_model)``, e.g. ``model.src_embed.weight`` (a
            :class:`~transformer.embeddings.TokenEmbedding`'s matrix, before its
            ``sqrt(d_model)`` scale, which changes no ranking).
        token_id: the token to start from; it is never its own neighbour.
        k: how many neighbours.
        metric: ``"cosine"`` (angle only; a zero vector has similarity 0 to everything) or
            ``"euclidean"``.
        exclude: ids never returned, e.g. the special tokens.

    Returns:
        :class:`Neighbours` ``(ids, scores)``, nearest first.

    Raises:
        ValueError: ``embedding_weight`` is not a 2-D float tensor, an id is out of range,
            ``k`` is not in ``[1, tokens left]`` or ``metric`` is unknown.
    """
    vectors, excluded = _check_neighbours(embedding_weight, token_id, k, metric, exclude)
    query = vectors[token_id]  # (d_model,)
    if metric == "cosine":
        unit = torch.nn.functional.normalize(vectors, dim=-1)  # (vocab, d_model)
        scores = unit @ unit[token_id]  # (vocab,)
        scores[excluded] = -math.inf
        top = scores.topk(k)
    else:
        scores = (vectors - query).norm(dim=-1)  # (vocab,)
        scores[excluded] = math.inf
        top = scores.topk(k, largest=False)
    return Neighbours(top.indices, top.values)
# --8<-- [end:nearest_neighbours]


def _check_neighbours(embedding_weight: Tensor, token_id: int, k: int, metric: str,
                      exclude: Sequence[int]) -> tuple[Tensor, Tensor]:
    if (not isinstance(embedding_weight, Tensor) or embedding_weight.dim() != 2
            or not embedding_weight.is_floating_point()):
        got = (f"{embedding_weight.dtype} tensor of shape {tuple(embedding_weight.shape)}"
               if isinstance(embedding_weight, Tensor) else type(embedding_weight).__name__)
        raise ValueError(f"embedding_weight must be a float tensor (vocab, d_model), got {got}")
    vocab = embedding_weight.shape[0]
    for name, i in (("token_id", token_id), *(("exclude", e) for e in exclude)):
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < vocab:
            raise ValueError(f"{name} must hold token ids in [0, {vocab}), got {i!r}")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {list(_METRICS)}, got {metric!r}")
    excluded = sorted({token_id, *exclude})
    left = vocab - len(excluded)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= left:
        raise ValueError(f"k must be an integer in [1, {left}] (the tokens not excluded), got "
                         f"{k!r}")
    vectors = embedding_weight.detach().float()  # (vocab, d_model)
    return vectors, torch.tensor(excluded, device=vectors.device)


def neighbours_table(embedding_weight: Tensor, token_ids: Sequence[int], k: int = 5,
                     metric: str = "cosine", *, labels: Sequence[str] | None = None,
                     exclude: Sequence[int] = ()) -> str:
    """The :func:`nearest_neighbours` of each of ``token_ids``, as a Markdown table (one row
    per token, its neighbours nearest first with their scores), readable printed as is.

    Args:
        labels: the text of each id (``labels[i]`` for id ``i``); the ids themselves if None.
        Others: as :func:`nearest_neighbours`.

    Raises:
        ValueError: as :func:`nearest_neighbours`, or ``labels`` shorter than the vocabulary.
    """
    vocab = embedding_weight.shape[0] if isinstance(embedding_weight, Tensor) else 0
    if labels is not None and len(labels) < vocab:
        raise ValueError(f"labels must name all {vocab} ids, got {len(labels)}")

    def name(i: int) -> str:
        return str(i) if labels is None else labels[i]

    score = "cosine similarity" if metric == "cosine" else "distance"
    lines = [f"| token | {k} nearest ({score}) |", "|---|---|"]
    for token in token_ids:
        found = nearest_neighbours(embedding_weight, token, k, metric, exclude=exclude)
        cells = ", ".join(f"`{name(i)}` {s:.2f}"
                          for i, s in zip(found.ids.tolist(), found.scores.tolist(), strict=True))
        lines.append(f"| `{name(token)}` | {cells} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- drawing (matplotlib)

def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("transformer.viz draws with matplotlib, the viz extra: "
                          "pip install 'executable-transformer[viz]'") from err
    return plt


def _array(values: Any) -> Any:
    """A tensor (perhaps on a GPU, perhaps requiring grad) or an array → a NumPy array."""
    import numpy as np

    if isinstance(values, Tensor):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values)


def _check_labels(name: str, labels: Sequence[str] | None, size: int) -> None:
    if labels is not None and len(labels) != size:
        raise ValueError(f"{name} must have one label per position ({size}), got {len(labels)}")


def _broadcast_allowed(allowed: Any, shape: tuple[int, ...]) -> Any:
    """``allowed`` (a boolean mask, ``True`` = may attend) broadcast to ``shape``."""
    import numpy as np

    mask = _array(allowed).astype(bool)
    try:
        return np.broadcast_to(mask.reshape((1,) * (len(shape) - mask.ndim) + mask.shape), shape)
    except ValueError:
        raise ValueError(f"allowed must be broadcastable to the weights' shape {shape}, got "
                         f"shape {mask.shape}") from None


def attention_heatmap(ax: Axes, weights: Tensor, queries: Sequence[str] | None = None,
                      keys: Sequence[str] | None = None, *, allowed: Tensor | None = None,
                      title: str | None = None, cmap: str = "Blues",
                      label_queries: bool = True, label_keys: bool = True) -> AxesImage:
    """Draw one attention map on ``ax``: rows are queries, columns keys, colour 0 to 1.

    Args:
        ax: a matplotlib ``Axes``.
        weights: ``(q_len, k_len)``.
        queries: one label per query (row), e.g. the decoder's input tokens; positions
            ``0 .. q_len - 1`` if None.
        keys: one label per key (column).
        allowed: optional boolean ``(q_len, k_len)`` (broadcastable), ``True`` = may attend;
            forbidden cells are drawn grey.
        title: the panel's title.
        label_queries: write the query labels (off for inner panels of a grid).
        label_keys: write the key labels.

    Returns:
        The ``AxesImage`` (for a colour bar).

    Raises:
        ValueError: ``weights`` is not 2-D or a label list does not fit it.
    """
    import numpy as np

    data = _array(weights).astype(float)
    if data.ndim != 2:
        raise ValueError(f"weights must be one map (q_len, k_len), got shape {data.shape}")
    _check_labels("queries", queries, data.shape[0])
    _check_labels("keys", keys, data.shape[1])
    if allowed is not None:
        data = np.ma.masked_where(~_broadcast_allowed(allowed, data.shape), data)
    image = ax.imshow(data, cmap=_pyplot().get_cmap(cmap).with_extremes(bad=_MASKED),
                      vmin=0.0, vmax=1.0, interpolation="nearest")
    rows, cols = data.shape
    ax.set_yticks(range(rows), queries if queries is not None and label_queries else
                  ([str(i) for i in range(rows)] if label_queries else []), fontsize=7)
    ax.set_xticks(range(cols), keys if keys is not None and label_keys else
                  ([str(j) for j in range(cols)] if label_keys else []), fontsize=7,
                  rotation=90 if keys is not None and max(map(len, keys), default=0) > 2 else 0)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=8)
    return image


def plot_attention(weights: Tensor, queries: Sequence[str] | None = None,
                   keys: Sequence[str] | None = None, *, allowed: Tensor | None = None,
                   titles: Sequence[str] | None = None, size: float = 1.9,
                   cmap: str = "Blues", xlabel: str = "key", ylabel: str = "query") -> Figure:
    """Attention heatmaps of one example: a grid of layers × heads, one colour scale.

    Query labels are written on the first column, key labels under the last row.

    Args:
        weights: ``(layers, heads, q_len, k_len)`` (one example of :func:`attention_maps`),
            ``(heads, q_len, k_len)`` (one layer: a single row) or ``(q_len, k_len)``.
        queries: one label per query (row), e.g. the input tokens; positions if None.
        keys: one label per key (column).
        allowed: boolean, broadcastable to ``weights``; ``False`` cells (masked, e.g.
            padding) are drawn grey.
        titles: one per panel, row by row; by default ``"layer l, head h"``.
        size: width of one panel in inches.

    Returns:
        A matplotlib ``Figure``: one axes per panel, then the colour bar's.

    Raises:
        ValueError: ``weights`` has not 2 to 4 dimensions, or labels or titles do not fit.
    """

    data = _array(weights)
    if not 2 <= data.ndim <= 4:
        raise ValueError(f"weights must be (layers, heads, q_len, k_len), (heads, q_len, k_len)"
                         f" or (q_len, k_len), got shape {data.shape}")
    single_layer = data.ndim < 4
    grid = data.reshape((1,) * (4 - data.ndim) + data.shape)  # (layers, heads, q, k)
    layers, heads, q_len, k_len = grid.shape
    _check_labels("queries", queries, q_len)
    _check_labels("keys", keys, k_len)
    mask = None if allowed is None else _broadcast_allowed(allowed, grid.shape)
    if titles is None:
        titles = [f"head {h}" if single_layer else f"layer {layer}, head {h}"
                  for layer in range(layers) for h in range(heads)]
        if data.ndim == 2:
            titles = [""]
    if len(titles) != layers * heads:
        raise ValueError(f"titles must have one entry per panel ({layers * heads}), got "
                         f"{len(titles)}")
    height = size * q_len / k_len
    fig, axes = _pyplot().subplots(layers, heads, squeeze=False, layout="constrained",
                                   figsize=(size * heads + 1.2, height * layers + 0.8))
    image = None
    for layer in range(layers):
        for h in range(heads):
            image = attention_heatmap(
                axes[layer, h], grid[layer, h], queries, keys,
                allowed=None if mask is None else mask[layer, h],
                title=titles[layer * heads + h], cmap=cmap,
                label_queries=h == 0, label_keys=layer == layers - 1)
        axes[layer, 0].set_ylabel(ylabel, fontsize=8)
    for h in range(heads):
        axes[-1, h].set_xlabel(xlabel, fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="attention weight")
    return fig


def plot_attention_entropy(entropy: Tensor | Mapping[str, Tensor], *,
                           max_entropy: float | Mapping[str, float] | None = None,
                           size: float = 0.6) -> Figure:
    """Attention entropy per head (:func:`attention_entropy`), a layers × heads grid per kind,
    each cell written in nats.

    Args:
        entropy: ``(layers, heads)``, or ``{title: (layers, heads)}`` for several panels
            (e.g. one per kind of attention).
        max_entropy: the top of the colour scale (e.g. ``log(k_len)``, a uniform head), one
            value or one per panel; the largest entropy shown if None.
        size: size of one cell in inches.

    Returns:
        A matplotlib ``Figure``: one axes per panel, then one colour bar each.

    Raises:
        ValueError: an entry is not 2-D.
    """
    panels = dict(entropy) if isinstance(entropy, Mapping) else {"": entropy}
    arrays = {title: _array(values).astype(float) for title, values in panels.items()}
    for title, values in arrays.items():
        if values.ndim != 2:
            raise ValueError(f"entropy must be (layers, heads), got shape {values.shape} for "
                             f"{title or 'the panel'}")
    widths = [values.shape[1] for values in arrays.values()]
    height = max(values.shape[0] for values in arrays.values())
    fig, axes = _pyplot().subplots(1, len(arrays), squeeze=False, layout="constrained",
                                   figsize=(size * sum(widths) + 1.3 * len(arrays),
                                            size * height + 1.0),
                                   gridspec_kw={"width_ratios": widths})
    for ax, (title, values) in zip(axes[0], arrays.items(), strict=True):
        top = (max_entropy.get(title) if isinstance(max_entropy, Mapping) else max_entropy)
        top = float(values.max()) if top is None else float(top)
        image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=max(top, 1e-9))
        for (layer, h), value in _cells(values):
            ax.text(h, layer, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 0.6 * top else "black")
        ax.set_xticks(range(values.shape[1]), [str(h) for h in range(values.shape[1])],
                      fontsize=7)
        ax.set_yticks(range(values.shape[0]), [str(i) for i in range(values.shape[0])],
                      fontsize=7)
        ax.set_xlabel("head", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
        if title:
            ax.set_title(title, fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.9, label="entropy (nats)")
    return fig


def _cells(values: Any) -> list[tuple[tuple[int, int], float]]:
    return [((i, j), float(values[i, j])) for i in range(values.shape[0])
            for j in range(values.shape[1])]


def plot_positional_encoding(table: Tensor, *, title: str | None = None) -> Figure:
    """A positional-encoding table as a heatmap: positions down, dimensions across.

    Args:
        table: ``(max_len, d_model)``, e.g. :func:`~transformer.embeddings.sinusoidal_table`
            or a learned position embedding's weight.
        title: the figure's title.

    Returns:
        A matplotlib ``Figure``: the heatmap's axes and the colour bar's.

    Raises:
        ValueError: ``table`` is not 2-D.
    """
    data = _array(table).astype(float)
    if data.ndim != 2:
        raise ValueError(f"table must be (max_len, d_model), got shape {data.shape}")
    top = max(float(abs(data).max()), 1e-9)
    fig, ax = _pyplot().subplots(figsize=(6.4, 3.6), layout="constrained")
    image = ax.imshow(data, cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto",
                      interpolation="nearest")
    ax.set_xlabel("dimension (even: sin, odd: cos)")
    ax.set_ylabel("position pos")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="value")
    return fig


def plot_learning_rate(curves: Mapping[str, Sequence[float]], *, first_step: int = 1,
                       warmup_steps: int | None = None, mark_peaks: bool = True) -> Figure:
    """Learning-rate schedules against the step, each peak marked and labelled.

    Args:
        curves: ``{label: rates}``, the rate of each step from ``first_step`` on, e.g. eq. 3
            computed by :func:`~transformer.training.noam_lr`, or the ``"lr"`` of a
            trainer's metrics.
        first_step: the step of each curve's first rate.
        warmup_steps: draw a dashed line there, labelled.
        mark_peaks: mark each curve's largest rate with its step and value.

    Returns:
        A matplotlib ``Figure`` with one axes.

    Raises:
        ValueError: no curve, or an empty one.
    """
    if not curves or any(len(rates) == 0 for rates in curves.values()):
        raise ValueError("curves must map labels to non-empty sequences of rates, got "
                         f"{ {label: len(rates) for label, rates in curves.items()} }")
    fig, ax = _pyplot().subplots(figsize=(6, 3.2), layout="constrained")
    last = first_step
    for label, rates in curves.items():
        values = [float(r) for r in rates]
        steps = range(first_step, first_step + len(values))
        last = max(last, steps[-1])
        (line,) = ax.plot(steps, values, label=label)
        if mark_peaks:
            peak = max(range(len(values)), key=values.__getitem__)
            ax.plot(steps[peak], values[peak], "o", color=line.get_color())
            ax.annotate(f"step {steps[peak]}: {values[peak]:.2e}", xy=(steps[peak], values[peak]),
                        xytext=(12, -4), textcoords="offset points", fontsize=9,
                        color=line.get_color())
    if warmup_steps is not None:
        ax.axvline(warmup_steps, color="0.6", linestyle="--", linewidth=1)
        ax.text(warmup_steps, 0, f" warmup_steps = {warmup_steps}", fontsize=8, color="0.4",
                va="bottom")
    ax.set_xlabel("step_num")
    ax.set_ylabel("lrate")
    ax.set_xlim(0, last)
    ax.set_ylim(bottom=0)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.legend(frameon=False)
    return fig
