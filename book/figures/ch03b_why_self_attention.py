"""The figure of chapter 3b (docs/03b-why-self-attention.md): what one layer costs against the
sequence length ``n``, counted (multiply-accumulates) and measured (seconds, bytes saved for
backward). Everything plotted is computed by the chapter with :mod:`transformer.complexity`
and passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # build machines have no display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["cost_panels"]

_INK = "#222222"


def cost_panels(ns: Sequence[int], panels: Mapping[str, Mapping[str, Sequence[float]]], *,
                crossover: float | None = None) -> Figure:
    """One log-log panel per measure, one line per layer.

    Args:
        ns: the sequence lengths (x axis of every panel).
        panels: ``{panel title: {layer: values at ns}}``.
        crossover: an ``n`` to mark with a dotted vertical line on every panel (``n = d``).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels), 3.0),
                             layout="constrained", squeeze=False)
    colors = plt.get_cmap("tab10").colors
    layers: list[str] = []
    for ax, (title, series) in zip(axes[0], panels.items(), strict=True):
        for name, values in series.items():
            if name not in layers:
                layers.append(name)
            ax.loglog(ns, values, "o-", markersize=3, linewidth=1.2,
                      color=colors[layers.index(name) % len(colors)], label=name)
        if crossover is not None:
            ax.axvline(crossover, color=_INK, linestyle=":", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("sequence length n", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    handles = {line.get_label(): line for ax in axes[0] for line in ax.get_lines()
               if not line.get_label().startswith("_")}
    if crossover is not None:
        handles["n = d"] = plt.Line2D([], [], color=_INK, linestyle=":", linewidth=1)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center",
               ncols=min(len(handles), 3), fontsize=8, frameon=False)
    return fig
