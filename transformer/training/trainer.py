"""A small training loop with the paper's optimizer, schedule and loss (§5.3–5.4).

Adam with β1 = 0.9, β2 = 0.98, ε = 1e-9, the learning rate of equation 3, label smoothing 0.1,
plus what a modern run needs: gradient accumulation, clipping, bf16/fp16 autocast, optional
``torch.compile``, JSON-lines metrics, and checkpoints from which a run resumes bit-identically.

**Divergence**: a NaN or infinite loss or gradient norm raises :class:`TrainingDiverged` before
the optimizer applies the step, so the weights, the last checkpoint and the metrics file (strict
JSON: no ``NaN``/``Infinity``; the diverged step has no record) hold only the good steps.

**Batches** are dicts of tensors: ``{"src", "tgt_in", "tgt_out"}`` for the encoder-decoder
(``logits = model(src, tgt_in)``, predicting ``tgt_out``) or ``{"tokens", "targets"}`` for a
decoder-only model (``logits = model(tokens)``). Padding is ``model.config.pad_id``. A
decoder-only batch may also hold ``"unpadded": True`` (a Python bool) when its tokens hold no
padding, as windows of running text do: the model then runs its causal fast path.

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
import numbers
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from transformer.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from transformer.training.distributed import is_main_process
from transformer.training.loss import label_smoothed_nll
from transformer.training.schedule import CosineSchedule, NoamSchedule

Batch = dict[str, Any]  # tensors (and the optional "unpadded" flag of decoder-only batches)
LossFn = Callable[[nn.Module, Batch], tuple[Tensor, int]]
Batches = Iterable[Batch] | Callable[[int], Iterable[Batch]]
_NOT_APPLIED = ("the step was not applied, so the weights are those of the step before (and "
                "the last checkpoint is intact); try a smaller lr_factor, more warmup_steps or "
                "grad_clip")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer{' or None' if optional else ''}, got "
                        f"{value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be {'None or ' if optional else ''}>= {minimum}, got "
                         f"{value}")


def _check_real(name: str, value: Any, ok: Callable[[float], bool], rule: str,
                optional: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_real(value):
        raise TypeError(f"{name} must be a number{' or None' if optional else ''}, got "
                        f"{value!r} ({type(value).__name__})")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} must be a finite number {rule}, got {value}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def _path_or_none(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path (str or os.PathLike) or None, got {value!r} "
                        f"({type(value).__name__})")
    return os.fspath(value)


@dataclass
class TrainConfig:
    """Hyper-parameters of a run; the defaults are the paper's (§5.3, §5.4).

    ``lr_factor`` scales equation 3; ``grad_clip`` is a max global L2 norm (``None``: no
    clipping); ``precision`` is ``"fp32"``, ``"bf16"`` (autocast, CPU or CUDA) or ``"fp16"``
    (autocast + ``GradScaler``, CUDA only); ``device=None`` picks CUDA when available.
    ``eval_every``/``checkpoint_every`` count optimizer steps (``None``: never); checkpoints go
    to ``<checkpoint_dir>/latest``. ``log_path`` receives one JSON object per step.
    ``keep_checkpoints=k`` also writes each checkpoint to ``<checkpoint_dir>/step-N`` and keeps
    the last ``k`` of them, for checkpoint averaging (§6.1,
    :func:`~transformer.training.average_checkpoints`).

    GPT-style runs (chapter 12) set ``optimizer="adamw"`` with ``weight_decay`` (applied to
    the matrices and embeddings only, the tensors of two or more dimensions, as GPT-2 and
    nanoGPT do) and ``schedule="cosine"``: linear warm-up over ``warmup_steps`` to the peak
    ``lr``, then cosine decay to ``min_lr`` at ``decay_steps`` (default ``max_steps``);
    ``lr_factor`` is then unused. Under ``schedule="noam"`` (eq. 3), ``lr`` must stay ``None``.

    Raises:
        TypeError: a field of the wrong type (named): counts must be integers (not bools or
            floats), rates finite numbers, switches bools, paths str/os.PathLike.
        ValueError: a value out of range (named), e.g. ``max_steps < 1``, a non-finite or
            non-positive ``lr_factor``, betas outside ``[0, 1)``, an unknown precision.
    """

    max_steps: int = 100_000
    warmup_steps: int = 4000
    lr_factor: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0
    schedule: Literal["noam", "cosine"] = "noam"
    lr: float | None = None
    min_lr: float = 0.0
    decay_steps: int | None = None
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
    keep_checkpoints: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_steps", "warmup_steps", "grad_accum_steps"):
            _check_int(name, getattr(self, name), 1)
        for name in ("eval_every", "checkpoint_every", "keep_checkpoints"):
            _check_int(name, getattr(self, name), 1, optional=True)
        _check_int("seed", self.seed, -(2**63))
        if self.seed >= 2**64:  # what torch.manual_seed accepts
            raise ValueError(f"seed must be in [-2**63, 2**64), got {self.seed}")
        _check_real("lr_factor", self.lr_factor, lambda v: v > 0, "> 0")
        _check_real("eps", self.eps, lambda v: v > 0, "> 0")
        _check_real("label_smoothing", self.label_smoothing, lambda v: 0 <= v < 1, "in [0, 1)")
        _check_real("grad_clip", self.grad_clip, lambda v: v > 0, "> 0", optional=True)
        if not isinstance(self.betas, tuple | list) or len(self.betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            _check_real(f"betas[{i}]", beta, lambda v: 0 <= v < 1, "in [0, 1)")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        _check_real("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0")
        if self.weight_decay > 0 and self.optimizer != "adamw":
            raise ValueError(f"weight_decay={self.weight_decay} needs optimizer='adamw' "
                             f"(decoupled weight decay), got optimizer={self.optimizer!r}")
        if self.schedule not in ("noam", "cosine"):
            raise ValueError(f"schedule must be 'noam' or 'cosine', got {self.schedule!r}")
        _check_real("lr", self.lr, lambda v: v > 0, "> 0", optional=True)
        _check_int("decay_steps", self.decay_steps, 1, optional=True)
        if self.schedule == "cosine":
            if self.lr is None:
                raise ValueError("schedule='cosine' needs lr (the peak learning rate), got None")
            _check_real("min_lr", self.min_lr, lambda v: 0 <= v <= self.lr, f"in [0, lr={self.lr}]")
            decay = self.decay_steps if self.decay_steps is not None else self.max_steps
            if decay <= self.warmup_steps:
                raise ValueError(f"decay_steps (default max_steps) must be greater than "
                                 f"warmup_steps={self.warmup_steps}, got {decay}")
        elif self.lr is not None:
            raise ValueError(f"lr={self.lr} is the peak of schedule='cosine'; eq. 3 "
                             f"(schedule='noam') is scaled by lr_factor instead")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', got {self.precision!r}")
        for name in ("compile", "progress"):
            _check_bool(name, getattr(self, name))
        self.checkpoint_dir = _path_or_none("checkpoint_dir", self.checkpoint_dir)
        self.log_path = _path_or_none("log_path", self.log_path)
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every needs checkpoint_dir, got checkpoint_dir=None")
        if self.keep_checkpoints is not None and self.checkpoint_every is None:
            raise ValueError("keep_checkpoints needs checkpoint_every, got checkpoint_every=None")
        if self.device is not None:
            if not isinstance(self.device, str | torch.device):
                raise TypeError(f"device must be a str, a torch.device or None, got "
                                f"{self.device!r} ({type(self.device).__name__})")
            try:
                self.device = str(torch.device(self.device))
            except RuntimeError as err:
                raise ValueError(f"device must name a torch device, e.g. 'cpu' or 'cuda:0', "
                                 f"got {self.device!r}") from err


class TrainingDiverged(RuntimeError):
    """Training met a non-finite loss or gradient norm (NaN or inf) and stopped.

    Raised by :meth:`Trainer.train_step` *before* the optimizer applies the step, so the weights
    stay those of the last good step, and no checkpoint or metrics record is written for it.
    Attributes: ``step`` (the optimizer step, counted from 1), ``quantity`` (``"loss"``,
    ``"gradient norm"`` or ``"eval_loss"``) and ``value``.
    """

    def __init__(self, step: int, quantity: str, value: float, detail: str) -> None:
        self.step, self.quantity, self.value = step, quantity, value
        super().__init__(f"training diverged at step {step}: the {quantity} is {value}; "
                         f"{detail}")


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
        elif {"tokens", "targets"} <= batch.keys():  # "unpadded": True, windows of running text
            causal = {"is_causal": True} if batch.get("unpadded") is True else {}
            logits = model(batch["tokens"], **causal)  # any model(tokens) without the flag
            target = batch["targets"]
        else:
            raise ValueError("batch must have keys {'src', 'tgt_in', 'tgt_out'} or "
                             f"{{'tokens', 'targets'}}, got {sorted(batch)}")
        loss = label_smoothed_nll(logits, target, self.label_smoothing, self.pad_id,
                                  reduction="sum")
        return loss, int((target != self.pad_id).sum())


# --8<-- [start:make_optimizer]
def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (§5.3) or AdamW with decoupled weight decay on the tensors of two or more
    dimensions (weight matrices and embeddings; biases and norm gains are not decayed, as in
    GPT-2 and nanoGPT). The learning rate is set by the schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=1.0, betas=config.betas, eps=config.eps)
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=1.0, betas=config.betas,
                             eps=config.eps, fused=fused or None)  # one kernel for all tensors
# --8<-- [end:make_optimizer]


class Trainer:
    """Trains ``model`` on ``train_batches`` with Adam and the eq. 3 schedule (§5.3).

    ``model.config`` must give ``d_model`` (for eq. 3) and, unless ``loss_fn`` is given,
    ``pad_id``. ``loss_fn(model, batch)`` returns ``(summed loss, target tokens)`` (see
    :class:`TokenLoss`). Construction seeds Python and torch with ``config.seed``, so dropout
    draws are reproducible. Raises ``ValueError`` for fp16 without CUDA or a model without
    ``config``.

    ``model`` may be wrapped in ``DistributedDataParallel`` (chapter 18,
    :mod:`transformer.training.distributed`): each rank then trains on its own shard, the loss
    and gradients are averaged over the tokens of all ranks' micro-batches (the global batch),
    and only rank 0 writes checkpoints and metrics. ``self.model`` is the unwrapped model.
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
        wrapper = model  # what the loss runs: DistributedDataParallel, or the model itself
        self.distributed = isinstance(model, DistributedDataParallel)
        if self.distributed:
            model = model.module
        model_config = getattr(model, "config", None)
        if not hasattr(model_config, "d_model") or (loss_fn is None and
                                                    not hasattr(model_config, "pad_id")):
            raise ValueError("model.config must give d_model (for the eq. 3 schedule) and "
                             "pad_id (for the default loss_fn)")
        seed_everything(config.seed)
        self.model = model.to(self.device)
        self.forward_model = torch.compile(wrapper) if config.compile else wrapper
        self.loss_fn = loss_fn or TokenLoss(config.label_smoothing, model_config.pad_id)
        self.optimizer = make_optimizer(model, config)
        self.scheduler: LRScheduler
        if config.schedule == "cosine":
            assert config.lr is not None  # checked by TrainConfig
            self.scheduler = CosineSchedule(
                self.optimizer, config.lr, config.warmup_steps,
                config.decay_steps or config.max_steps, config.min_lr)
        else:
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
    def train_step(self) -> dict[str, Any]:
        """One optimizer step over ``grad_accum_steps`` micro-batches; returns its metrics.

        Raises:
            TrainingDiverged: the loss, or (except under fp16 loss scaling, where the scaler
                skips such a step) the gradient norm, is NaN or infinite; the step is not
                applied.
        """
        if self._stream is None:
            self._stream = self._batches()
        start = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        lr = self.optimizer.param_groups[0]["lr"]  # set by the schedule (eq. 3 by default)
        loss_sum, n_tokens = 0.0, 0
        for _ in range(self.config.grad_accum_steps):
            with self._autocast():
                loss, n = self.loss_fn(self.forward_model, next(self._stream))  # summed loss
            value = loss.item()
            if not math.isfinite(value):  # stop before a NaN reaches the weights
                raise TrainingDiverged(self.step + 1, "loss", value, _NOT_APPLIED)
            loss_sum, n_tokens = loss_sum + value, n_tokens + n
            self.scaler.scale(loss).backward()  # gradients add up over micro-batches
        loss_sum, n_tokens, world = self._global_sums(loss_sum, n_tokens)  # DDP: all ranks
        self.scaler.unscale_(self.optimizer)
        for p in self.model.parameters():  # sum over tokens → mean over tokens
            if p.grad is not None:  # (DDP has averaged over the ranks: undo its 1/world)
                p.grad.div_(max(n_tokens, 1) / world if self.distributed else max(n_tokens, 1))
        grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(),
                                                   self.config.grad_clip or math.inf))
        skipped = not math.isfinite(grad_norm)  # fp16: the scaler skips the step, lowers the scale
        if skipped and not self.scaler.is_enabled():
            raise TrainingDiverged(self.step + 1, "gradient norm", grad_norm, _NOT_APPLIED)
        self.scaler.step(self.optimizer)  # Adam(β1=0.9, β2=0.98, ε=1e-9), §5.3
        self.scaler.update()
        self.scheduler.step()  # the learning rate of the next step
        self.step += 1
        seconds = max(time.perf_counter() - start, 1e-9)
        metrics: dict[str, Any] = {
            "step": self.step, "epoch": self.epoch, "loss": loss_sum / max(n_tokens, 1),
            "lr": lr, "tokens": n_tokens, "tokens_per_s": n_tokens / seconds,
            "grad_norm": None if skipped else grad_norm}
        if skipped:
            metrics["skipped"] = True  # an fp16 overflow: JSON has no NaN, so null + this flag
        return metrics
    # --8<-- [end:train_step]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss per target token over ``eval_batches`` (same ``loss_fn``, dropout off).

        Raises:
            ValueError: no ``eval_batches``.
            TrainingDiverged: the evaluation loss is NaN or infinite.
        """
        if self.eval_batches is None:
            raise ValueError("evaluate() needs eval_batches, got None")
        self.model.eval()
        total, n_tokens = 0.0, 0
        for batch in self.eval_batches:
            with self._autocast():
                loss, n = self.loss_fn(self.forward_model, self._to_device(batch))
            total, n_tokens = total + loss.item(), n_tokens + n
        total, n_tokens, _ = self._global_sums(total, n_tokens)  # DDP: all ranks' batches
        if not math.isfinite(total):
            raise TrainingDiverged(self.step, "eval_loss", total,
                                   "the weights after this step give a non-finite loss on "
                                   "eval_batches; no checkpoint or metrics record was written "
                                   "for it")
        return {"eval_loss": total / max(n_tokens, 1), "eval_tokens": n_tokens}

    def train(self, until_step: int | None = None) -> list[dict[str, Any]]:
        """Train until ``self.step == until_step`` (default ``config.max_steps``).

        Evaluates, checkpoints and logs as configured; returns the metrics of each step. The
        metrics file holds strict JSON, one object per completed step: a step that diverges
        raises :class:`TrainingDiverged` before its record, evaluation or checkpoint is written.

        Raises:
            TrainingDiverged: see :meth:`train_step` and :meth:`evaluate`.
            TypeError: ``until_step`` is not an integer (or None).
        """
        cfg = self.config
        if until_step is not None and not _is_int(until_step):
            raise TypeError(f"until_step must be an integer or None, got {until_step!r}")
        until = cfg.max_steps if until_step is None else until_step
        history = []
        main = is_main_process()  # under DDP only rank 0 writes files
        with tqdm(total=until, initial=self.step, disable=not (cfg.progress and main),
                  desc="train") as bar:
            while self.step < until:
                metrics = self.train_step()
                if cfg.eval_every and self.eval_batches is not None and \
                        self.step % cfg.eval_every == 0:
                    metrics |= self.evaluate()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and main:
                    self.save(Path(str(cfg.checkpoint_dir)) / "latest")
                    if cfg.keep_checkpoints:
                        self._keep_step_checkpoint(Path(str(cfg.checkpoint_dir)),
                                                   cfg.keep_checkpoints)
                if cfg.log_path is not None and main:
                    with open(cfg.log_path, "a", encoding="utf-8") as log:
                        log.write(json.dumps(metrics, allow_nan=False) + "\n")
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{metrics['lr']:.2e}",
                                tok_s=f"{metrics['tokens_per_s']:.0f}")
                history.append(metrics)
        return history

    # --8<-- [start:global_sums]
    def _global_sums(self, loss_sum: float, n_tokens: int) -> tuple[float, int, int]:
        """Under DDP, the loss and token counts summed over all ranks, and the world size."""
        if not self.distributed:
            return loss_sum, n_tokens, 1
        sums = torch.tensor([loss_sum, n_tokens], dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)  # the global batch: every rank's micro-batches
        return float(sums[0]), int(sums[1]), dist.get_world_size()
    # --8<-- [end:global_sums]

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Checkpoint model (with its class and config), optimizer, schedule, RNG states, the
        data position and the caller's ``extra`` entries (e.g. a task name, a recipe dict).

        The checkpoint's ``extra`` is ``extra`` plus the trainer's own keys (``step``,
        ``epoch``, ``batch_in_epoch``, ``scaler``, ``train_config``);
        :func:`~transformer.training.run.load_run` returns it as ``Run.extra``.

        Raises:
            ValueError: ``extra`` uses one of the trainer's own keys.
            TypeError: an ``extra`` value is not a tensor or plain value (see
                :func:`~transformer.training.checkpoint.save_checkpoint`).
            CheckpointError: the model holds NaN or inf (the checkpoint on disk is kept).
        """
        own = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
               "scaler": self.scaler.state_dict(),
               "train_config": dataclasses.asdict(self.config)}
        clash = sorted(own.keys() & (extra or {}).keys())
        if clash:
            raise ValueError(f"extra must not use the trainer's own keys {sorted(own)}, got "
                             f"{clash}")
        return save_checkpoint(path, self.model, self.optimizer, self.scheduler,
                               {**(extra or {}), **own})

    def _keep_step_checkpoint(self, root: Path, keep: int) -> None:
        """Write ``root/step-N`` (atomically, as :meth:`save`) and remove all but the last
        ``keep`` such directories."""
        from transformer.training.averaging import STEP_PREFIX, step_checkpoints

        self.save(root / f"{STEP_PREFIX}{self.step}")
        for old in step_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def resume(self, path: str | Path) -> dict[str, Any]:
        """Load a :meth:`save` checkpoint; the next step continues as if never interrupted.

        Returns the checkpoint's ``extra`` (the caller's entries included). Raises
        ``CheckpointError`` for a checkpoint that is missing, damaged or does not fit.
        """
        extra = load_checkpoint(path, self.model, self.optimizer, self.scheduler,
                                map_location=self.device, restore_rng=True)
        missing = [k for k in ("step", "epoch", "batch_in_epoch", "scaler") if k not in extra]
        if missing:
            raise CheckpointError(f"{path} was not saved by Trainer.save: its extra lacks "
                                  f"{missing}")
        self.step, self.epoch = extra["step"], extra["epoch"]
        self.batch_in_epoch = extra["batch_in_epoch"]
        if extra["scaler"]:
            self.scaler.load_state_dict(extra["scaler"])
        self._stream = None  # rebuilt at (epoch, batch_in_epoch) by the next train_step
        return extra


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
