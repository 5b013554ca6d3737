"""Figure helpers for Part I of the book, chapters 5–8: matplotlib only.

Chapters call these from markdown-exec blocks and turn the figure into inline SVG with
:func:`book.figures.svg`. The helpers only *draw*: every number they show is computed by the
package and passed in by the chapter, so a picture cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # build machines have no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = ["attention_panels", "mask_panels", "parameter_bars"]

_MASKED = "#d9d9d9"  # a cell the mask forbids: weight exactly 0
_ALLOWED = "#3f6fb5"
_INK = "#222222"


def _as_array(values) -> np.ndarray:  # a tensor or an array
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _token_axes(ax: Axes, rows: Sequence[str], cols: Sequence[str], title: str) -> None:
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=9)
    for side in ax.spines.values():
        side.set_visible(False)


def attention_panels(panels: Sequence[tuple[str, object, object]], tokens: Sequence[str],
                     *, size: float = 2.2) -> Figure:
    """A row of attention-weight heatmaps; cells a mask forbids are drawn grey.

    Args:
        panels: ``(title, weights, allowed)`` per panel: ``weights`` is ``(q_len, k_len)`` in
            ``[0, 1]``; ``allowed`` is a boolean ``(q_len, k_len)`` mask (``True`` = may
            attend) or ``None``.
        tokens: the label of each position (queries and keys are the same sequence).
        size: width of one panel in inches.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 0.9, size + 0.5),
                             squeeze=False, layout="constrained")
    cmap = plt.get_cmap("Blues").with_extremes(bad=_MASKED)
    image = None
    for ax, (title, weights, allowed) in zip(axes[0], panels, strict=True):
        data = _as_array(weights).astype(float)
        if allowed is not None:
            data = np.ma.masked_where(~_as_array(allowed).astype(bool), data)
        image = ax.imshow(data, cmap=cmap, vmin=0.0, vmax=1.0)
        _token_axes(ax, tokens, tokens, title)
    axes[0][0].set_ylabel("query", fontsize=8)
    for ax in axes[0]:
        ax.set_xlabel("key", fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.75, label="weight")
    fig.legend(handles=[Patch(color=_MASKED, label="masked (weight 0)")],
               loc="outside lower center", fontsize=7, frameon=False)
    return fig


def mask_panels(panels: Sequence[tuple[str, object, Sequence[str], Sequence[str]]],
                *, cell: float = 0.32) -> Figure:
    """Boolean masks drawn as grids: blue = may attend, grey = masked.

    Args:
        panels: ``(title, mask, query_labels, key_labels)`` per panel, ``mask`` a boolean
            ``(q_len, k_len)`` tensor or array.
        cell: size of one cell in inches.
    """
    widths = [len(keys) for _, _, _, keys in panels]
    height = max(len(queries) for _, _, queries, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(cell * sum(widths) + 1.2 * len(panels),
                                                      cell * height + 1.3),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": widths})
    cmap = ListedColormap([_MASKED, _ALLOWED])
    for ax, (title, mask, queries, keys) in zip(axes[0], panels, strict=True):
        ax.imshow(_as_array(mask).astype(float), cmap=cmap, vmin=0.0, vmax=1.0)
        ax.set_xticks(np.arange(-0.5, len(keys)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(queries)), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.2)
        ax.tick_params(which="minor", length=0)
        _token_axes(ax, queries, keys, title)
        ax.set_xlabel("keys", fontsize=8)
        ax.set_ylabel("queries", fontsize=8)
    fig.legend(handles=[Patch(color=_ALLOWED, label="True: may attend"),
                        Patch(color=_MASKED, label="False: masked")],
               loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return fig


def parameter_bars(models: Mapping[str, Mapping[str, int]], *,
                   reference: Mapping[str, float] | None = None,
                   colors: Mapping[str, str] | None = None) -> Figure:
    """Horizontal stacked bars: parameters of each model split by part, in millions.

    Args:
        models: ``{model name: {part: count}}``; every model must list the same parts.
        reference: optional ``{model name: count}`` (e.g. the paper's), drawn as a dotted mark.
        colors: optional ``{part: colour}``; parts not in it take colours of ``tab10``.
    """
    names = list(models)
    parts = list(next(iter(models.values())))
    colors = colors or {}
    fallback = plt.get_cmap("tab10").colors
    reference = reference or {}
    fig, ax = plt.subplots(figsize=(6.4, 0.75 * len(names) + 1.6), layout="constrained")
    left = np.zeros(len(names))
    for i, part in enumerate(parts):
        values = np.array([models[name][part] for name in names], dtype=float) / 1e6
        ax.barh(names, values, left=left, color=colors.get(part, fallback[i % len(fallback)]),
                label=part, edgecolor="white", linewidth=0.5)
        left += values
    for y, name in enumerate(names):
        if name in reference:
            ax.plot([reference[name] / 1e6] * 2, [y - 0.42, y + 0.42], color=_INK,
                    linewidth=1.5, linestyle=":")
        end = max(left[y], reference.get(name, 0.0) / 1e6)
        ax.annotate(f"{left[y]:.1f}M", (end, y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8, color=_INK)
    if reference:
        ax.plot([], [], color=_INK, linestyle=":", label="paper (Table 3)")
    ax.invert_yaxis()
    ax.set_xlabel("parameters (millions)")
    ax.set_xlim(0, left.max() * 1.18)
    ax.spines[["top", "right"]].set_visible(False)
    fig.legend(loc="outside lower center", ncols=3, fontsize=7, frameon=False)
    return fig
