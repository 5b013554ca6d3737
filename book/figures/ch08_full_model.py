"""The figure of chapter 8 (docs/08-full-model.md): parameters of each model split by part.
Drawn at build time and embedded with :func:`book.figures.svg`; every count is computed by the
chapter from the package's models and passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # build machines have no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["parameter_bars"]

_INK = "#222222"


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
