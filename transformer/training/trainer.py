"""A small training loop with the paper's optimizer, schedule and loss (§5.3–5.4).

Adam with β1 = 0.9, β2 = 0.98, ε = 1e-9, the learning rate of equation 3, label smoothing 0.1,
plus what a modern run needs: gradient accumulation, clipping, bf16/fp16 autocast, optional
``torch.compile``, JSON-lines metrics, and checkpoints from which a run resumes bit-identically.

**Batches** are dicts of tensors: ``{"src", "tgt_in", "tgt_out"}`` for the encoder-decoder
(``logits = model(src, tgt_in)``, predicting ``tgt_out``) or ``{"tokens", "targets"}`` for a
decoder-only model (``logits = model(tokens)``). Padding is ``model.config.pad_id``.

**Resuming the data position**: ``train_batches`` is either a callable ``epoch -> iterable of
batches`` or a re-iterable (a list, or a loader; ``set_epoch(epoch)`` is called if it has one).
The trainer counts the epoch and the batches consumed within it; :meth:`Trainer.resume` rebuilds
that epoch's iterable and skips the consumed batches. So each epoch's batches must depend only on
the epoch number (e.g. :class:`~transformer.training.batching.TokenBatchSampler` with a seed), not
on global random state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm import tqdm

from transformer.training.checkpoint import load_checkpoint, save_checkpoint
from transformer.training.loss import label_smoothed_nll
from transformer.training.schedule import NoamSchedule

Batch = dict[str, Tensor]
LossFn = Callable[[nn.Module, Batch], tuple[Tensor, int]]
Batches = Iterable[Batch] | Callable[[int], Iterable[Batch]]


@dataclass
class TrainConfig:
    """Hyper-parameters of a run; the defaults are the paper's (§5.3, §5.4).

    ``lr_factor`` scales equation 3; ``grad_clip`` is a max global L2 norm (``None``: no
    clipping); ``precision`` is ``"fp32"``, ``"bf16"`` (autocast, CPU or CUDA) or ``"fp16"``
    (autocast + ``GradScaler``, CUDA only); ``device=None`` picks CUDA when available.
    ``eval_every``/``checkpoint_every`` count optimizer steps (``None``: never); checkpoints go
    to ``<checkpoint_dir>/latest``. ``log_path`` receives one JSON object per step.
    """

    max_steps: int = 100_000
    warmup_steps: int = 4000
    lr_factor: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    label_smoothing: float = 0.1
    grad_clip: float | None = None
    grad_accum_steps: int = 1
    eval_every: int | None = None
    checkpoint_every: int | None = None
    checkpoint_dir: str | None = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False
    seed: int = 0
    device: str | None = None
    log_path: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "warmup_steps", "grad_accum_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be None or >= 1, got {getattr(self, name)}")
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every needs checkpoint_dir, got checkpoint_dir=None")
        if not (self.lr_factor > 0 and self.eps > 0 and all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"need lr_factor > 0, eps > 0 and betas in [0, 1), got "
                             f"lr_factor={self.lr_factor}, eps={self.eps}, betas={self.betas}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be None or > 0, got {self.grad_clip}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', got {self.precision!r}")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random`` and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    torch.manual_seed(seed)


class TokenLoss:
    """The default ``loss_fn``: label-smoothed loss summed over a batch's target tokens.

    ``loss_fn(model, batch) -> (summed loss, number of non-padding target tokens)``; the trainer
    divides by the tokens of all micro-batches, giving the mean loss per target token.
    """

    def __init__(self, label_smoothing: float, pad_id: int) -> None:
        self.label_smoothing, self.pad_id = label_smoothing, pad_id

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[Tensor, int]:
        if {"src", "tgt_in", "tgt_out"} <= batch.keys():
            logits, target = model(batch["src"], batch["tgt_in"]), batch["tgt_out"]
        elif {"tokens", "targets"} <= batch.keys():
            logits, target = model(batch["tokens"]), batch["targets"]
        else:
            raise ValueError("batch must have keys {'src', 'tgt_in', 'tgt_out'} or "
                             f"{{'tokens', 'targets'}}, got {sorted(batch)}")
        loss = label_smoothed_nll(logits, target, self.label_smoothing, self.pad_id,
                                  reduction="sum")
        return loss, int((target != self.pad_id).sum())


class Trainer:
    """Trains ``model`` on ``train_batches`` with Adam and the eq. 3 schedule (§5.3).

    ``model.config`` must give ``d_model`` (for eq. 3) and, unless ``loss_fn`` is given,
    ``pad_id``. ``loss_fn(model, batch)`` returns ``(summed loss, target tokens)`` (see
    :class:`TokenLoss`). Construction seeds Python and torch with ``config.seed``, so dropout
    draws are reproducible. Raises ``ValueError`` for fp16 without CUDA or a model without
    ``config``.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, train_batches: Batches,
                 eval_batches: Iterable[Batch] | None = None,
                 loss_fn: LossFn | None = None) -> None:
        self.config = config
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available()
                                                     else "cpu"))
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ValueError(f"precision='fp16' needs a CUDA device (loss scaling with "
                             f"torch.amp.GradScaler); on {self.device.type} use 'bf16' or 'fp32'")
        model_config = getattr(model, "config", None)
        if not hasattr(model_config, "d_model") or (loss_fn is None and
                                                    not hasattr(model_config, "pad_id")):
            raise ValueError("model.config must give d_model (for the eq. 3 schedule) and "
                             "pad_id (for the default loss_fn)")
        seed_everything(config.seed)
        self.model = model.to(self.device)
        self.forward_model = torch.compile(model) if config.compile else model
        self.loss_fn = loss_fn or TokenLoss(config.label_smoothing, model_config.pad_id)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1.0,  # lr: set by the schedule
                                          betas=config.betas, eps=config.eps)
        self.scheduler = NoamSchedule(self.optimizer, model_config.d_model,
                                      config.warmup_steps, config.lr_factor)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=config.precision == "fp16")
        self.train_batches, self.eval_batches = train_batches, eval_batches
        self.step = self.epoch = self.batch_in_epoch = 0  # optimizer steps; data position
        self._stream: Iterator[Batch] | None = None

    def _epoch_batches(self, epoch: int) -> Iterable[Batch]:
        if callable(self.train_batches):
            return self.train_batches(epoch)
        if hasattr(self.train_batches, "set_epoch"):
            self.train_batches.set_epoch(epoch)
        return self.train_batches

    def _batches(self) -> Iterator[Batch]:
        """Batches forever, epoch after epoch, starting at (epoch, batch_in_epoch)."""
        while True:
            batches = iter(self._epoch_batches(self.epoch))
            for _ in itertools.islice(batches, self.batch_in_epoch):
                pass  # resuming: skip what was consumed before the checkpoint
            for batch in batches:
                self.batch_in_epoch += 1
                yield self._to_device(batch)
            if self.batch_in_epoch == 0:
                raise ValueError(f"train_batches gave no batches for epoch {self.epoch}")
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def _to_device(self, batch: Batch) -> Batch:
        return {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # --8<-- [start:train_step]
    def train_step(self) -> dict[str, float]:
        """One optimizer step over ``grad_accum_steps`` micro-batches; returns its metrics."""
        if self._stream is None:
            self._stream = self._batches()
        start = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        lr = self.optimizer.param_groups[0]["lr"]  # eq. 3 at this step, set by NoamSchedule
        loss_sum, n_tokens = 0.0, 0
        for _ in range(self.config.grad_accum_steps):
            with self._autocast():
                loss, n = self.loss_fn(self.forward_model, next(self._stream))  # summed loss
            self.scaler.scale(loss).backward()  # gradients add up over micro-batches
            loss_sum, n_tokens = loss_sum + loss.item(), n_tokens + n
        self.scaler.unscale_(self.optimizer)
        for p in self.model.parameters():  # sum over tokens → mean over tokens
            if p.grad is not None:
                p.grad.div_(max(n_tokens, 1))
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(),
                                             self.config.grad_clip or math.inf)
        self.scaler.step(self.optimizer)  # Adam(β1=0.9, β2=0.98, ε=1e-9), §5.3
        self.scaler.update()
        self.scheduler.step()  # the learning rate of the next step
        self.step += 1
        seconds = time.perf_counter() - start
        return {"step": self.step, "epoch": self.epoch, "loss": loss_sum / max(n_tokens, 1),
                "lr": lr, "tokens": n_tokens, "tokens_per_s": n_tokens / seconds,
                "grad_norm": float(grad_norm)}
    # --8<-- [end:train_step]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss per target token over ``eval_batches`` (same ``loss_fn``, dropout off)."""
        if self.eval_batches is None:
            raise ValueError("evaluate() needs eval_batches, got None")
        self.model.eval()
        total, n_tokens = 0.0, 0
        for batch in self.eval_batches:
            with self._autocast():
                loss, n = self.loss_fn(self.forward_model, self._to_device(batch))
            total, n_tokens = total + loss.item(), n_tokens + n
        return {"eval_loss": total / max(n_tokens, 1), "eval_tokens": n_tokens}

    def train(self, until_step: int | None = None) -> list[dict[str, float]]:
        """Train until ``self.step == until_step`` (default ``config.max_steps``).

        Evaluates, checkpoints and logs as configured; returns the metrics of each step.
        """
        cfg = self.config
        until = cfg.max_steps if until_step is None else until_step
        history = []
        with tqdm(total=until, initial=self.step, disable=not cfg.progress, desc="train") as bar:
            while self.step < until:
                metrics = self.train_step()
                if cfg.eval_every and self.eval_batches is not None and \
                        self.step % cfg.eval_every == 0:
                    metrics |= self.evaluate()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save(Path(str(cfg.checkpoint_dir)) / "latest")
                if cfg.log_path is not None:
                    with open(cfg.log_path, "a", encoding="utf-8") as log:
                        log.write(json.dumps(metrics) + "\n")
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{metrics['lr']:.2e}",
                                tok_s=f"{metrics['tokens_per_s']:.0f}")
                history.append(metrics)
        return history

    def save(self, path: str | Path) -> Path:
        """Checkpoint model, optimizer, schedule, RNG states and the data position."""
        extra = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                 "scaler": self.scaler.state_dict(), "config": dataclasses.asdict(self.config)}
        return save_checkpoint(path, self.model, self.optimizer, self.scheduler, extra)

    def resume(self, path: str | Path) -> None:
        """Load a :meth:`save` checkpoint; the next step continues as if never interrupted."""
        extra = load_checkpoint(path, self.model, self.optimizer, self.scheduler,
                                map_location=self.device, restore_rng=True)
        self.step, self.epoch = extra["step"], extra["epoch"]
        self.batch_in_epoch = extra["batch_in_epoch"]
        if extra["scaler"]:
            self.scaler.load_state_dict(extra["scaler"])
        self._stream = None  # rebuilt at (epoch, batch_in_epoch) by the next train_step


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The JSON-lines metrics file written by :meth:`Trainer.train`, one dict per line."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_metrics(path: str | Path, ax: Any = None) -> Any:
    """Plot training (and evaluation) loss against step from a metrics file; returns the axes.

    A step logged twice (a run resumed from an earlier checkpoint) is plotted once, the last
    record winning. Needs matplotlib (the ``viz`` extra).
    """
    import matplotlib.pyplot as plt

    records = {r["step"]: r for r in read_metrics(path)}
    steps = sorted(records)
    if ax is None:
        _, ax = plt.subplots()
    ax.plot(steps, [records[s]["loss"] for s in steps], label="train loss")
    evals = [s for s in steps if "eval_loss" in records[s]]
    if evals:
        ax.plot(evals, [records[s]["eval_loss"] for s in evals], "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss per target token")
    ax.legend()
    return ax
