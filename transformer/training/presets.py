"""The paper's training runs (Table 3, "train steps"; §5.3): how long the base and big models
were trained. Everything else of a run — Adam's β1 = 0.9, β2 = 0.98, ε = 1e-9, 4000 warm-up steps
(§5.3), label smoothing ε_ls = 0.1 (§5.4) — is already :class:`TrainConfig`'s default.

"We trained the base models for a total of 100,000 steps or 12 hours. [...] The big models were
trained for 300,000 steps (3.5 days)."
"""

from __future__ import annotations

from typing import Any

from transformer.training.trainer import TrainConfig

__all__ = ["PAPER_TRAIN_STEPS", "paper_train_config"]

PAPER_TRAIN_STEPS = {"base": 100_000, "big": 300_000}  # Table 3, "train steps"


def paper_train_config(model: str = "base", **changes: Any) -> TrainConfig:
    """The training configuration of the paper's ``"base"`` or ``"big"`` model (Table 3, §5.3):
    :class:`TrainConfig`'s defaults with ``max_steps`` from :data:`PAPER_TRAIN_STEPS`.

    Args:
        model: ``"base"`` or ``"big"``.
        changes: other :class:`TrainConfig` fields, e.g. ``device="cuda"``.

    Raises:
        ValueError: if ``model`` is neither ``"base"`` nor ``"big"`` (or a change is invalid).
    """
    if model not in PAPER_TRAIN_STEPS:
        raise ValueError(f"model must be one of {sorted(PAPER_TRAIN_STEPS)}, got {model!r}")
    return TrainConfig(**{"max_steps": PAPER_TRAIN_STEPS[model], **changes})
