"""The figure of chapter 0 (docs/index.md): Figure 1 of the paper, redrawn with the classes
of the package. Drawn at build time and embedded with :func:`book.figures.svg`; the labels
(parameter counts) are computed by the chapter, so the picture cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # build machines have no display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["draw_model_parts"]

# Colours close to those of Figure 1 of the paper.
_ATTENTION = "#fbd9a8"
_FEED_FORWARD = "#bfe3f5"
_NORM = "#f6f3b5"
_EMBEDDING = "#f7c8c8"
_OUTPUT = "#d9d2f0"
_POSITION = "#d6eccf"
_INK = "#222222"
_MUTED = "#555555"

_BOX_W = 3.3
_BOX_H = 0.62
_GAP = 0.28
_INCH_PER_UNIT = 0.72


def _box(ax: Axes, x: float, y: float, title: str, code: str, color: str) -> tuple[float, float]:
    """A rounded box centred at ``x`` with its bottom at ``y``; return (bottom, top)."""
    ax.add_patch(
        FancyBboxPatch(
            (x - _BOX_W / 2, y), _BOX_W, _BOX_H,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color, edgecolor=_INK, linewidth=0.8,
        )
    )
    ax.text(x, y + _BOX_H * 0.67, title, ha="center", va="center", fontsize=9, color=_INK)
    ax.text(x, y + _BOX_H * 0.28, code, ha="center", va="center", fontsize=7.5, color=_MUTED,
            family="monospace")
    return y, y + _BOX_H


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8, linewidth=0.8,
                        color=_INK, shrinkA=0, shrinkB=0)
    )


def _column(ax: Axes, x: float, y: float, boxes: Sequence[tuple[str, str, str]]
            ) -> list[tuple[float, float]]:
    """Boxes drawn bottom to top from ``y``, joined by arrows; return their (bottom, top)."""
    spans: list[tuple[float, float]] = []
    for title, code, color in boxes:
        bottom = spans[-1][1] + _GAP if spans else y
        if spans:
            _arrow(ax, (x, spans[-1][1]), (x, bottom))
        spans.append(_box(ax, x, bottom, title, code, color))
    return spans


def _frame(ax: Axes, x: float, spans: Sequence[tuple[float, float]], label: str,
           side: str) -> None:
    """The grey "N×" frame of Figure 1 around ``spans``, with ``label`` written along its side."""
    pad = 0.16
    bottom, top = spans[0][0] - pad, spans[-1][1] + pad
    ax.add_patch(
        FancyBboxPatch(
            (x - _BOX_W / 2 - pad, bottom), _BOX_W + 2 * pad, top - bottom,
            boxstyle="round,pad=0.02,rounding_size=0.15",
            facecolor="#f2f2f2", edgecolor=_MUTED, linewidth=0.8, zorder=0,
        )
    )
    sign = -1 if side == "left" else 1
    ax.text(x + sign * (_BOX_W / 2 + pad + 0.22), (bottom + top) / 2, label, ha="center",
            va="center", rotation=90, fontsize=8.5, color=_INK)


def draw_model_parts(labels: Mapping[str, str]) -> Figure:
    """Figure 1 of the paper redrawn, each box labelled with the package class that implements it.

    Args:
        labels: text written along the encoder and decoder stacks, keys ``"encoder"`` and
            ``"decoder"`` (for example a parameter count computed by the chapter).

    Returns:
        A matplotlib figure, about 6.6 inches wide.
    """
    enc_x, dec_x = 2.3, 6.7
    x_range, y_range = (-0.1, 9.1), (-0.75, 9.95)
    fig, ax = plt.subplots(
        figsize=((x_range[1] - x_range[0]) * _INCH_PER_UNIT,
                 (y_range[1] - y_range[0]) * _INCH_PER_UNIT)
    )
    fig.subplots_adjust(0, 0, 1, 1)
    ax.set_xlim(*x_range)
    ax.set_ylim(*y_range)
    ax.set_aspect("equal")
    ax.axis("off")

    bottoms = {}
    for x, side, name, embedding in (
        (enc_x, "encoder", "Inputs", "Input Embedding"),
        (dec_x, "decoder", "Outputs (shifted right)", "Output Embedding"),
    ):
        ax.text(x, -0.45, name, ha="center", va="center", fontsize=9, color=_INK)
        _arrow(ax, (x, -0.3), (x, 0.0))
        spans = _column(ax, x, 0.0, [
            (embedding, "TokenEmbedding", _EMBEDDING),
            ("+ Positional Encoding", "SinusoidalPositionalEncoding", _POSITION),
        ])
        bottoms[side] = spans[-1][1] + _GAP + 0.1
        _arrow(ax, (x, spans[-1][1]), (x, bottoms[side]))

    encoder = _column(ax, enc_x, bottoms["encoder"], [
        ("Multi-Head Attention", "MultiHeadAttention", _ATTENTION),
        ("Add & Norm", "ResidualSublayer", _NORM),
        ("Feed Forward", "PositionwiseFeedForward", _FEED_FORWARD),
        ("Add & Norm", "ResidualSublayer", _NORM),
    ])
    _frame(ax, enc_x, encoder, f"Encoder: EncoderLayer × N\n{labels['encoder']}", "left")
    decoder = _column(ax, dec_x, bottoms["decoder"], [
        ("Masked Multi-Head Attention", "MultiHeadAttention + causal_mask", _ATTENTION),
        ("Add & Norm", "ResidualSublayer", _NORM),
        ("Multi-Head Attention", "MultiHeadAttention", _ATTENTION),
        ("Add & Norm", "ResidualSublayer", _NORM),
        ("Feed Forward", "PositionwiseFeedForward", _FEED_FORWARD),
        ("Add & Norm", "ResidualSublayer", _NORM),
    ])
    _frame(ax, dec_x, decoder, f"Decoder: DecoderLayer × N\n{labels['decoder']}", "right")

    # The encoder's output ("memory") gives the keys and values of the decoder's second attention.
    enc_top = encoder[-1][1]
    cross_mid = (decoder[2][0] + decoder[2][1]) / 2
    turn_y, mid_x = enc_top + 0.5, (enc_x + dec_x) / 2
    ax.plot([enc_x, enc_x, mid_x, mid_x], [enc_top, turn_y, turn_y, cross_mid], color=_INK,
            linewidth=0.8, solid_joinstyle="round")
    _arrow(ax, (mid_x, cross_mid), (dec_x - _BOX_W / 2, cross_mid))
    ax.text(enc_x - 0.1, turn_y + 0.2, "memory: keys and values", ha="left", va="center",
            fontsize=8, color=_MUTED)

    head = _column(ax, dec_x, decoder[-1][1] + _GAP + 0.1, [
        ("Linear", "Transformer.generator", _OUTPUT),
        ("Softmax", "in the loss / in decoding", _OUTPUT),
    ])
    _arrow(ax, (dec_x, decoder[-1][1]), (dec_x, head[0][0]))
    _arrow(ax, (dec_x, head[-1][1]), (dec_x, head[-1][1] + 0.25))
    ax.text(dec_x, head[-1][1] + 0.45, "Output Probabilities", ha="center", va="center",
            fontsize=9, color=_INK)
    return fig
