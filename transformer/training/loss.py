"""Label-smoothed cross-entropy, the training loss of §5.4 ("Label Smoothing").

The paper: "During training, we employed label smoothing of value ε_ls = 0.1. This hurts
perplexity, as the model learns to be more unsure, but improves accuracy and BLEU score."

Instead of the one-hot target, the model is trained against a smoothed distribution ``q``: the
true token keeps ``1 - ε`` and the other ``ε`` is spread over the vocabulary. The loss is the
cross-entropy ``H(q, p) = -Σ_c q_c · log p_c``, computed from ``log_softmax(logits)`` only, so it
never takes the log of a zero probability (the ``inf`` of The Annotated Transformer's KL-divergence
version, its issue #109, came from ``log`` of zeros). Two ways to spread ε are in use:

* ``smooth_over_padding=True`` (default, = ``F.cross_entropy(..., label_smoothing=ε)``):
  every one of the ``V`` classes gets ``ε / V``, the true class included, so it ends with
  ``1 - ε + ε / V``.
* ``smooth_over_padding=False`` (The Annotated Transformer): the true class gets exactly
  ``1 - ε``, the padding class gets ``0`` (the model should never predict padding), and the
  ``V - 2`` remaining classes get ``ε / (V - 2)`` each.

The two differ by a few parts in ``V``; both reach their minimum when ``p = q``. The KL
divergence ``KL(q ‖ p) = H(q, p) - H(q)`` that The Annotated Transformer minimises differs from
the cross-entropy by the constant ``H(q)``, so it gives the same gradients. We report the
cross-entropy (as PyTorch does), whose smallest value is ``H(q) > 0`` when ``ε > 0``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Reduction = Literal["mean", "sum", "none"]


def _check_options(label_smoothing: float, reduction: str) -> None:
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_args(
    logits: Tensor, target: Tensor, label_smoothing: float, reduction: str
) -> None:
    _check_options(label_smoothing, reduction)
    if target.dtype != torch.long:
        raise TypeError(f"target must be a torch.long tensor of class ids, got {target.dtype}")
    if logits.dim() < 1 or logits.shape[:-1] != target.shape:
        raise ValueError(
            "target must have the shape of logits without its last (vocab) dimension: "
            f"logits {tuple(logits.shape)} needs target {tuple(logits.shape[:-1])}, "
            f"got {tuple(target.shape)}"
        )


# --8<-- [start:label_smoothing]
def label_smoothed_nll(
    logits: Tensor,
    target: Tensor,
    label_smoothing: float = 0.1,
    ignore_index: int = 0,
    *,
    smooth_over_padding: bool = True,
    reduction: Reduction = "mean",
) -> Tensor:
    """Cross-entropy against the label-smoothed target distribution (§5.4, ε_ls = 0.1).

    Args:
        logits: ``(..., vocab)`` unnormalised scores, e.g. ``(batch, tgt_len, vocab)``.
        target: ``(...)`` long class ids, e.g. ``(batch, tgt_len)``.
        label_smoothing: ε in ``[0, 1)``; ``0`` gives the plain negative log-likelihood.
        ignore_index: positions whose target equals it (padding) add nothing to the loss.
        smooth_over_padding: ``True`` spreads ε over all ``V`` classes, exactly as
            ``F.cross_entropy(logits, target, label_smoothing=ε, ignore_index=ignore_index)``;
            ``False`` gives ``1 - ε`` to the true class, ``0`` to class ``ignore_index`` and
            ``ε / (V - 2)`` to each other class (The Annotated Transformer).
        reduction: ``"mean"`` over non-padding tokens (``0``, not NaN, when there are none),
            ``"sum"``, or ``"none"`` for the per-token loss of shape ``target.shape``
            (``0`` at padding).

    Raises:
        ValueError: ε outside ``[0, 1)``, unknown ``reduction``, ``target`` shape not
            ``logits.shape[:-1]``, or ``smooth_over_padding=False`` with fewer than 3 classes
            or ``ignore_index`` outside ``[0, V)``.
        TypeError: ``target`` is not a ``torch.long`` tensor.
    """
    _check_args(logits, target, label_smoothing, reduction)
    vocab = logits.shape[-1]
    eps = label_smoothing
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # the loss is summed over V classes: do it in float32
    # --8<-- [start:label_smoothing_math]
    log_p = F.log_softmax(logits, dim=-1)                         # (..., V), finite
    keep = target != ignore_index                                 # (...)
    safe_target = target.masked_fill(~keep, 0)                    # padding → any valid id
    log_p_true = log_p.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)  # (...)
    sum_log_p = log_p.sum(dim=-1)                                 # (...) = Σ_c log p_c
    # --8<-- [end:label_smoothing_math]

    if smooth_over_padding:  # q_c = ε/V for every c, plus 1-ε on the true class
        # --8<-- [start:label_smoothing_loss]
        loss = -(1.0 - eps) * log_p_true - (eps / vocab) * sum_log_p
        # --8<-- [end:label_smoothing_loss]
    else:  # q_true = 1-ε, q_pad = 0, q_other = ε/(V-2)
        if vocab < 3 or not 0 <= ignore_index < vocab:
            raise ValueError(
                "smooth_over_padding=False needs vocab >= 3 and ignore_index in "
                f"[0, {vocab}), got vocab={vocab}, ignore_index={ignore_index}"
            )
        sum_other = sum_log_p - log_p_true - log_p[..., ignore_index]
        loss = -(1.0 - eps) * log_p_true - (eps / (vocab - 2)) * sum_other

    loss = torch.where(keep, loss, torch.zeros_like(loss))       # (...), 0 at padding
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / keep.sum().clamp(min=1)                   # mean over real tokens
# --8<-- [end:label_smoothing]


class LabelSmoothingLoss(nn.Module):
    """Module form of :func:`label_smoothed_nll` (§5.4), for ``loss = criterion(logits, target)``.

    Shapes: ``logits (..., vocab)``, ``target (...)`` long; returns a scalar, or ``target.shape``
    for ``reduction="none"``. Raises what :func:`label_smoothed_nll` raises; the arguments are
    checked here too so that a bad ``label_smoothing`` fails at construction.
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        ignore_index: int = 0,
        reduction: Reduction = "mean",
        smooth_over_padding: bool = True,
    ) -> None:
        super().__init__()
        _check_options(label_smoothing, reduction)
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index
        self.reduction: Reduction = reduction
        self.smooth_over_padding = smooth_over_padding

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothed_nll(
            logits,
            target,
            self.label_smoothing,
            self.ignore_index,
            smooth_over_padding=self.smooth_over_padding,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"label_smoothing={self.label_smoothing}, ignore_index={self.ignore_index}, "
            f"reduction={self.reduction!r}, smooth_over_padding={self.smooth_over_padding}"
        )
