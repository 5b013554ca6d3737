"""Training the Transformer (§5): label smoothing, Adam with the eq. 3 schedule, batching by
length, checkpoints that rebuild their model (the run format: ``load_run``), and a small trainer.
Builds on the model; the model never imports it."""

from transformer.training.averaging import (
    average_checkpoints,
    average_state_dicts,
    step_checkpoints,
)
from transformer.training.batching import (
    RandomWindows,
    TokenBatchSampler,
    pad_batch,
    padding_fraction,
)
from transformer.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from transformer.training.loss import LabelSmoothingLoss, label_smoothed_nll
from transformer.training.run import Run, load_run
from transformer.training.schedule import CosineSchedule, NoamSchedule, cosine_lr, noam_lr
from transformer.training.trainer import (
    TokenLoss,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    make_optimizer,
    plot_metrics,
    read_metrics,
    seed_everything,
)

__all__ = [
    "CheckpointError",
    "CosineSchedule",
    "LabelSmoothingLoss",
    "NoamSchedule",
    "RandomWindows",
    "Run",
    "TokenBatchSampler",
    "TokenLoss",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "average_checkpoints",
    "average_state_dicts",
    "cosine_lr",
    "label_smoothed_nll",
    "load_checkpoint",
    "load_run",
    "make_optimizer",
    "noam_lr",
    "pad_batch",
    "padding_fraction",
    "plot_metrics",
    "read_metrics",
    "save_checkpoint",
    "seed_everything",
    "step_checkpoints",
]
