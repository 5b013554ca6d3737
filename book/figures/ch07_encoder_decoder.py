"""The figure of chapter 7 (docs/07-encoder-decoder.md): the masks of the three kinds of
attention, drawn as grids. Drawn at build time and embedded with :func:`book.figures.svg`; the
masks are computed by the package (``padding_mask``, ``causal_mask``) and passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # build machines have no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = ["mask_panels"]

_MASKED = "#d9d9d9"  # a cell the mask forbids
_ALLOWED = "#3f6fb5"


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
