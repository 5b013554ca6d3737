"""The package's models, loss and schedule inside PyTorch Lightning (chapter 18).

:class:`TransformerModule` is a ``lightning.LightningModule`` around either model kind: it
computes the label-smoothed loss of §5.4 (:class:`~transformer.training.trainer.TokenLoss`,
the mean over a batch's target tokens) on the package's batches, ``{"src", "tgt_in",
"tgt_out"}`` for a :class:`~transformer.model.Transformer` or ``{"tokens", "targets"}`` for a
:class:`~transformer.model.DecoderOnlyTransformer`, and trains with Adam and the learning rate
of equation 3 (:class:`~transformer.training.schedule.NoamSchedule`), stepped after every
optimizer step, as :class:`~transformer.training.Trainer` does. Lightning then brings its
own loop: devices, precision, strategies (DDP, FSDP), logging and checkpoints.

Lightning is optional: ``pip install 'executable-transformer[lightning]'``. Importing this
module without it raises an ``ImportError`` that says so; ``import transformer`` never
imports Lightning.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from transformer.training.schedule import NoamSchedule
from transformer.training.trainer import Batch, TokenLoss, TrainConfig

try:
    import lightning
except ImportError as err:  # pragma: no cover - exercised by a test in a subprocess
    raise ImportError("transformer.lightning needs PyTorch Lightning (lightning>=2.2): "
                      "pip install 'executable-transformer[lightning]'") from err

__all__ = ["TransformerModule"]


# --8<-- [start:lightning_module]
class TransformerModule(lightning.LightningModule):
    """A Transformer (either kind) as a ``LightningModule``: label-smoothed loss (§5.4), Adam
    and the eq. 3 schedule (§5.3), with the hyper-parameters of a :class:`TrainConfig`.

    Of ``config`` it uses ``warmup_steps``, ``lr_factor``, ``betas``, ``eps`` and
    ``label_smoothing``; the rest (steps, precision, devices, clipping, accumulation) are the
    ``lightning.Trainer``'s arguments. ``self.losses`` keeps each training step's loss.

    Args:
        model: a :class:`~transformer.model.Transformer` or
            :class:`~transformer.model.DecoderOnlyTransformer` (anything with
            ``config.d_model`` and ``config.pad_id`` that the batches fit).
        config: the hyper-parameters; default ``TrainConfig()`` (the paper's).

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``config`` not a ``TrainConfig``.
        ValueError: ``model.config`` lacks ``d_model`` or ``pad_id``.
    """

    def __init__(self, model: nn.Module, config: TrainConfig | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        model_config = getattr(model, "config", None)
        if not (hasattr(model_config, "d_model") and hasattr(model_config, "pad_id")):
            raise ValueError("model.config must give d_model (for the eq. 3 schedule) and "
                             f"pad_id (for the loss), got {type(model_config).__name__}")
        self.model, self.config = model, config
        self.loss_fn = TokenLoss(config.label_smoothing, model_config.pad_id)
        self.losses: list[float] = []

    def forward(self, *inputs: Tensor) -> Tensor:
        """Logits of the wrapped model: ``(src, tgt_in)`` or ``(tokens,)`` → ``(batch, seq,
        vocab)``."""
        return self.model(*inputs)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """The mean label-smoothed loss per target token of ``batch`` (§5.4).

        Raises:
            ValueError: ``batch`` has neither key set (see :class:`TokenLoss`).
        """
        loss_sum, n_tokens = self.loss_fn(self.model, batch)  # summed over target tokens
        loss = loss_sum / max(n_tokens, 1)
        self.losses.append(float(loss.detach()))
        self.log("train_loss", loss, prog_bar=True, batch_size=n_tokens)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """The same loss on a validation batch, logged as ``val_loss``."""
        loss_sum, n_tokens = self.loss_fn(self.model, batch)
        loss = loss_sum / max(n_tokens, 1)
        self.log("val_loss", loss, prog_bar=True, batch_size=n_tokens)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam (β1 = 0.9, β2 = 0.98, ε = 1e-9 by default) and eq. 3, stepped every optimizer
        step (§5.3)."""
        import torch

        optimizer = torch.optim.Adam(self.model.parameters(), lr=1.0,  # lr: set by eq. 3
                                     betas=self.config.betas, eps=self.config.eps)
        schedule = NoamSchedule(optimizer, self.model.config.d_model,  # type: ignore[union-attr]
                                self.config.warmup_steps, self.config.lr_factor)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1}}
# --8<-- [end:lightning_module]
