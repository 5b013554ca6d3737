"""Figures of the training chapter (docs/09-training.md), drawn at build time.

Every curve is computed by the package itself: the schedule by ``noam_lr`` (eq. 3), drawn by
:func:`transformer.viz.plot_learning_rate`; the target distributions by differentiating
``label_smoothed_nll``. A markdown-exec block on the page turns the figure into inline SVG with
:func:`book.figures.svg`::

    from book.figures import svg
    from book.figures.ch09_training import schedule_figure

    fig, peaks = schedule_figure()
    print(svg(fig, alt="..."))
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # build machines have no display

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from transformer.training.loss import label_smoothed_nll
from transformer.training.schedule import noam_lr
from transformer.viz import plot_learning_rate

__all__ = ["schedule_figure", "smoothed_target", "smoothing_figure"]


def schedule_figure(
    d_models: tuple[int, ...] = (512, 1024),
    warmup_steps: int = 4000,
    last_step: int = 40_000,
) -> tuple[Figure, dict[int, tuple[int, float]]]:
    """Eq. 3 for each ``d_model``, with the peak (found by search, not by formula) marked.

    Returns the figure and ``{d_model: (peak_step, peak_lr)}``.
    """
    curves = {d: [noam_lr(step, d, warmup_steps) for step in range(1, last_step + 1)]
              for d in d_models}
    peaks: dict[int, tuple[int, float]] = {}
    for d_model, rates in curves.items():
        peak = max(range(len(rates)), key=rates.__getitem__)
        peaks[d_model] = (peak + 1, rates[peak])  # steps count from 1
    fig = plot_learning_rate({f"$d_{{model}} = {d}$": rates for d, rates in curves.items()},
                             warmup_steps=warmup_steps)
    return fig, peaks


def smoothed_target(
    vocab: int, target: int, label_smoothing: float, pad_id: int, *, smooth_over_padding: bool
) -> torch.Tensor:
    """The distribution ``q`` that ``label_smoothed_nll`` trains towards, read off its gradient.

    For a cross-entropy ``H(q, softmax(z))`` with ``Σ q = 1`` the gradient is
    ``softmax(z) - q``, so ``q = softmax(z) - grad``. Returns a ``(vocab,)`` tensor.
    """
    logits = torch.zeros(vocab, dtype=torch.float64, requires_grad=True)
    loss = label_smoothed_nll(
        logits.unsqueeze(0),
        torch.tensor([target]),
        label_smoothing,
        pad_id,
        smooth_over_padding=smooth_over_padding,
    )
    loss.backward()
    q = (logits.softmax(-1) - logits.grad).detach()
    return q.round(decimals=12) + 0.0  # float64 round-off (1e-17) → exact zeros; no -0.0


def smoothing_figure(
    vocab: int = 8, target: int = 3, label_smoothing: float = 0.1, pad_id: int = 0
) -> tuple[Figure, dict[str, torch.Tensor]]:
    """One-hot target vs the two label-smoothed targets (§5.4), full scale and zoomed.

    Returns the figure and the three distributions by name.
    """
    targets = {
        "one-hot (ε = 0)": smoothed_target(vocab, target, 0.0, pad_id, smooth_over_padding=True),
        "smooth_over_padding=True: ε/V to every class (= F.cross_entropy)": smoothed_target(
            vocab, target, label_smoothing, pad_id, smooth_over_padding=True
        ),
        "smooth_over_padding=False: 0 to pad (The Annotated Transformer)": smoothed_target(
            vocab, target, label_smoothing, pad_id, smooth_over_padding=False
        ),
    }
    fig, (full, zoom) = plt.subplots(1, 2, figsize=(8, 3.4), gridspec_kw={"width_ratios": [1, 1]})
    width = 0.27
    classes = torch.arange(vocab)
    for i, (name, q) in enumerate(targets.items()):
        for ax in (full, zoom):
            ax.bar(classes + (i - 1) * width, q, width=width, label=name)
    for ax in (full, zoom):
        ax.set_xticks(classes.tolist())
        ax.set_xticklabels(
            ["pad" if c == pad_id else ("true" if c == target else str(c)) for c in range(vocab)]
        )
        ax.set_xlabel("class")
    full.set_ylabel("target probability $q_c$")
    full.set_ylim(0, 1.05)
    full.set_title("full scale", fontsize=9)
    zoom_top = 1.6 * label_smoothing / (vocab - 2)
    zoom.set_ylim(0, zoom_top)
    zoom.set_title(f"zoom: the ε = {label_smoothing} spread over the other classes", fontsize=9)
    for i, q in enumerate(targets.values()):
        for c in (pad_id, (target + 1) % vocab):
            zoom.annotate(
                f"{q[c].item():.4f}",
                xy=(c + (i - 1) * width, q[c].item()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize=6,
                rotation=90,
            )
    handles, labels = full.get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, fontsize=8, loc="lower center", ncol=1)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    return fig, targets
